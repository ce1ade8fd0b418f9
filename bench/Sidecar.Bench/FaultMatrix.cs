using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using ChatUpstream;
using StackExchange.Redis;

namespace Sidecar.Bench;

/// <summary>
/// The fault matrix, against real processes: two sidecar replicas (A produces, B serves resumes)
/// sharing a <c>redis-server</c>, in front of the emulator (which also plays the quota API). Each
/// cell injects one fault into a live answer and checks what every client received (every upstream
/// event once, in order, then a well-formed final part and <c>[DONE]</c>, in bounded time), what
/// the store holds afterwards, and what the metrics say. Prints one row per cell; exit code 1 when
/// any cell fails.
/// </summary>
internal static class FaultMatrix
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    public static async Task<int> RunAsync(string root, string configuration)
    {
        await using var rig = await Rig.StartAsync(root, configuration, "faults");
        var cells = new List<Cell>();
        foreach (var (name, run) in new (string, Func<Rig, Cell, Task>)[]
        {
            ("Redis killed mid-stream, then restarted", RedisKilledAsync),
            ("Redis stalled 3 s (CLIENT PAUSE) mid-stream", RedisPausedAsync),
            ("upstream killed (SIGKILL) mid-stream", UpstreamKilledAsync),
            ("replica A killed (SIGKILL) mid-stream, resumes on B", ReplicaKilledAsync),
            ("quota API down for 10 answers, then back", QuotaDownAsync),
            ("a client that reads one event a second", SlowReaderAsync),
        })
        {
            var cell = new Cell(name);
            var started = Stopwatch.StartNew();
            try
            {
                await run(rig, cell).WaitAsync(TimeSpan.FromMinutes(2));
            }
            catch (Exception ex)
            {
                cell.Fail($"{ex.GetType().Name}: {ex.Message}");
            }

            cell.Seconds = started.Elapsed.TotalSeconds;
            cells.Add(cell);
            Console.Error.WriteLine($"{(cell.Passed ? "pass" : "FAIL")} {name} ({cell.Seconds:F1} s){string.Concat(cell.Failures.Select(f => "\n  " + f))}");
            if (!cell.Passed)
            {
                foreach (var (replica, process) in new[] { ("A", rig.A), ("B", rig.B) })
                {
                    foreach (var line in process.Output.TakeLast(20))
                    {
                        Console.Error.WriteLine($"  {replica}| {line}");
                    }
                }
            }

        }

        Console.WriteLine("| fault | live client | resuming clients | store afterwards | metrics | time | result |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var c in cells)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Name} | {c.Live} | {c.Resumers} | {c.Store} | {c.Metrics} | {c.Seconds:F1} s | {(c.Passed ? "pass" : "FAIL: " + string.Join("; ", c.Failures))} |"));
        }

        var failed = cells.Count(c => !c.Passed);
        Console.WriteLine($"{cells.Count - failed} of {cells.Count} cells passed");
        return failed == 0 ? 0 : 1;
    }

    private static async Task RedisKilledAsync(Rig rig, Cell cell)
    {
        var lostBefore = await rig.MetricAsync(rig.A, "sidecar_store_lost_total");
        await using var live = await PostAsync(rig, rig.A, "deltas:100 pace:20");
        await live.WaitForEventsAsync(20);
        rig.KillRedis();
        using var whileDown = await rig.ResumeAsync(rig.B, live.Session);
        var downStatus = (int)whileDown.StatusCode;
        var downCategory = await ErrorCategoryAsync(whileDown);
        await live.ReadToEndAsync();
        rig.StartRedis();

        var ending = CheckLive(cell, live, expectError: "resume");
        cell.Check(downStatus == 503 && downCategory == "resume", $"resume while Redis is down: {downStatus} {downCategory}");
        // Once Redis is back, answers are stored again (the store reconnects by itself).
        var stored = await Rig.WaitAsync(async () =>
        {
            await using var next = await PostAsync(rig, rig.A, "deltas:10 pace:0");
            await next.ReadToEndAsync();
            var meta = await rig.StoredAsync(next.MessageId);
            return meta is { State: 1 } && Same(meta.Events, next.Stored) ? meta : null;
        });
        cell.Check(stored is not null, "answers stored again after the restart");
        var lost = await rig.MetricAsync(rig.A, "sidecar_store_lost_total") - lostBefore;
        cell.Check(lost >= 1, "store loss counted");
        cell.Live = $"every upstream event, then {ending}";
        cell.Resumers = $"{downStatus} `category:\"{downCategory}\"` while Redis is down";
        cell.Store = stored is null ? "not stored after the restart" : "the answer at the kill is gone with Redis (no persistence); the next answer whole, `Completed`";
        cell.Metrics = $"`sidecar_store_lost_total` +{lost}; `sidecar_store_available` back to {await rig.MetricAsync(rig.A, "sidecar_store_available")}";
    }

    private static async Task RedisPausedAsync(Rig rig, Cell cell)
    {
        var lostBefore = await rig.MetricAsync(rig.A, "sidecar_store_lost_total");
        await using var live = await PostAsync(rig, rig.A, "deltas:500 pace:10");
        await live.WaitForEventsAsync(20);
        await rig.Redis.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "3000", "ALL");
        var paused = Stopwatch.StartNew();

        // A resume during the pause: the store does not answer in time, so a typed 503 at once.
        using var duringPause = await rig.ResumeAsync(rig.B, live.Session);
        var pauseStatus = (int)duringPause.StatusCode;
        var pauseCategory = await ErrorCategoryAsync(duringPause);
        cell.Check(pauseStatus == 503 && pauseCategory == "resume", $"resume during the pause: {pauseStatus} {pauseCategory}");

        // One after it (the answer is still streaming): replayed and followed.
        await Rig.WaitAsync(async () => await rig.Redis.GetDatabase().PingAsync() < TimeSpan.FromSeconds(1) && paused.Elapsed > TimeSpan.FromSeconds(3) ? "up" : null);
        await using var resumer = await FollowAsync(rig, rig.B, live);
        await live.ReadToEndAsync();
        await resumer.ReadToEndAsync();
        var ending = CheckLive(cell, live, expectError: null);
        var gap = live.LargestGapMs();
        cell.Check(gap < 2500, $"largest gap between events {gap:F0} ms (Redis paused 3 s)");
        CheckResumer(cell, resumer, live);

        // The batches that timed out during the pause are sent again: the stored copy ends whole.
        var meta = await Rig.WaitAsync(async () => await rig.StoredAsync(live.MessageId) is { State: not 0 } m ? m : null);
        cell.Check(meta is { State: 1, Incomplete: false } && Same(meta.Events, live.Stored), "stored copy whole, Completed, the live client's events");
        var lost = await rig.MetricAsync(rig.A, "sidecar_store_lost_total") - lostBefore;
        cell.Check(lost == 0, $"store loss +{lost}");
        cell.Live = $"every upstream event, then {ending}; largest gap between events {gap:F0} ms (paced 10 ms, Redis paused 3 s from event 20)";
        cell.Resumers = $"during the pause: {pauseStatus} `category:\"{pauseCategory}\"` at once; after it (B): the live client's {resumer.Stored.Count} events, `finish`, `[DONE]`";
        cell.Store = $"all {meta?.Events.Count} events once, `Completed` (the timed-out batches were sent again)";
        cell.Metrics = $"`sidecar_store_lost_total` +{lost}";
    }

    private static async Task UpstreamKilledAsync(Rig rig, Cell cell)
    {
        var before = await rig.MetricAsync(rig.A, "sidecar_stream_ended_total", "outcome=\"upstream_failed\"");
        await using var live = await PostAsync(rig, rig.A, "deltas:200 pace:10");
        await live.WaitForEventsAsync(20);
        await using var resumer = await FollowAsync(rig, rig.B, live);
        await live.WaitForEventsAsync(40);
        live.EventsBeforeFault = 40;
        rig.Emulator.Kill();
        var killed = Stopwatch.StartNew();
        await Task.WhenAll(live.ReadToEndAsync(), resumer.ReadToEndAsync());
        var ended = killed.Elapsed;
        await rig.RestartEmulatorAsync();

        var ending = CheckLive(cell, live, expectError: "upstream_failed");
        CheckResumer(cell, resumer, live);
        var meta = await rig.StoredAsync(live.MessageId);
        cell.Check(meta is { State: 2, Incomplete: false } && Same(meta.Events, live.Stored), "store: Failed, same events as the live client");
        cell.Check(meta is not null && meta.Events.Count(IsErrorPart) == 1, "exactly one stored ending");
        var failed = await rig.MetricAsync(rig.A, "sidecar_stream_ended_total", "outcome=\"upstream_failed\"") - before;
        cell.Check(failed == 1, $"upstream_failed streams +{failed}");
        cell.Live = $"the {live.UpstreamEvents} events sent before the kill, then {ending}, {ended.TotalMilliseconds:F0} ms after the kill";
        cell.Resumers = "the same bytes (replayed, then followed live)";
        cell.Store = $"`Failed`, {meta?.Events.Count} events = the live client's, one ending";
        cell.Metrics = $"`sidecar_stream_ended_total{{outcome=\"upstream_failed\"}}` +{failed}";
    }

    // Events (10 ms apart) a replica's store writer may not yet have written when it dies: its
    // batches take about a millisecond, and a lag of one event was seen under the full test
    // suite's load; 20 (200 ms) still fails a writer that fell behind, without failing a loaded
    // machine's scheduling. The lag is counted from what the live client had read at the kill.
    private const int MaxStoreLagEvents = 20;

    private static async Task ReplicaKilledAsync(Rig rig, Cell cell)
    {
        var before = await rig.MetricAsync(rig.B, "sidecar_resume_requests_total", "result=\"producer_lost\"");
        await using var live = await PostAsync(rig, rig.A, "deltas:200 pace:10");
        await live.WaitForEventsAsync(20);
        await using var first = await FollowAsync(rig, rig.B, live);
        await using var second = await FollowAsync(rig, rig.B, live);
        await live.WaitForEventsAsync(40);
        var liveAtKill = live.EventCount;
        rig.A.Kill();
        var killed = Stopwatch.StartNew();
        await Task.WhenAll(first.ReadToEndAsync(), second.ReadToEndAsync());
        var ended = killed.Elapsed;
        await live.ReadToEndAsync();
        await rig.RestartAAsync();

        cell.Check(live.Error is not null || !live.Ended, "the killed replica's own client loses its connection");
        foreach (var resumer in new[] { first, second })
        {
            var ending = CheckEnding(cell, resumer, "producer_lost");
            // The store is written behind the live client (the answer never waits on it): what A's
            // writer had not yet sent when A died is lost with A. At this pace (10 ms) that is at
            // most a few events; anything more would be a store that fell behind.
            var behind = liveAtKill - resumer.UpstreamEvents;
            cell.Check(behind <= MaxStoreLagEvents, $"resumer: {resumer.UpstreamEvents} upstream events (the live client had read {liveAtKill} at the kill; at most {MaxStoreLagEvents} may have been unwritten)");
            CheckTail(cell, resumer);
            cell.Resumers = $"two resumers: the stored prefix ({resumer.UpstreamEvents} events; the live client had read {liveAtKill}), then {ending}, {ended.TotalSeconds:F1} s after the kill (lease 7 s)";
        }

        cell.Check(Same(first.Stored, second.Stored), "both resumers got the same events");
        cell.Check(ended < TimeSpan.FromSeconds(15), $"ended {ended.TotalSeconds:F1} s after the kill (bound 15 s: lease 7 s, then the resumers notice)");
        var meta = await rig.StoredAsync(live.MessageId);
        cell.Check(meta is { State: 2 } && Same(meta.Events, first.Stored), "store: Failed, the resumers' events");
        cell.Check(meta is not null && meta.Events.Count(IsErrorPart) == 1, "exactly one stored ending");
        var lost = await rig.MetricAsync(rig.B, "sidecar_resume_requests_total", "result=\"producer_lost\"") - before;
        cell.Check(lost == 1, $"producer_lost +{lost}");
        cell.Live = "its connection is gone with the replica";
        cell.Store = $"`Failed`, {meta?.Events.Count} events, one `producer_lost` ending (stored once though two resumers noticed)";
        cell.Metrics = $"B: `sidecar_resume_requests_total{{result=\"producer_lost\"}}` +{lost}";
    }

    private static async Task QuotaDownAsync(Rig rig, Cell cell)
    {
        var retriesBefore = await rig.MetricAsync(rig.A, "sidecar_quota_settlements_total", "outcome=\"retry\"") + await rig.MetricAsync(rig.B, "sidecar_quota_settlements_total", "outcome=\"retry\"");
        await rig.EmulatorControlAsync("/__emulator/quota/down");
        var ids = new List<string>();
        var depth = 0.0;
        try
        {
            for (var i = 0; i < 10; i++)
            {
                await using var live = await PostAsync(rig, i % 2 == 0 ? rig.A : rig.B, "deltas:5 pace:0", bearer: $"user-{i}");
                await live.ReadToEndAsync();
                CheckLive(cell, live, expectError: null);
                ids.Add(live.MessageId);
            }

            depth = await Rig.WaitAsync(async () => await rig.MetricAsync(rig.A, "sidecar_quota_outbox_depth") is var d and > 0 ? d : (double?)null) ?? 0;
        }
        finally
        {
            await rig.EmulatorControlAsync("/__emulator/quota/up");
        }

        var up = Stopwatch.StartNew();
        var settled = await Rig.WaitAsync(async () =>
        {
            var all = await rig.ReservationsAsync();
            var ours = all.Where(r => ids.Contains(r.Id)).ToList();
            return ours.Count == ids.Count && ours.All(r => r.Status != "reserved") ? ours : null;
        }, TimeSpan.FromSeconds(30));
        cell.Check(settled is not null, "every reservation settled after the API came back");
        cell.Check(settled is not null && settled.All(r => r.Settlements == 1 && r.Status == "confirmed"), "each confirmed exactly once");
        var retries = await rig.MetricAsync(rig.A, "sidecar_quota_settlements_total", "outcome=\"retry\"") + await rig.MetricAsync(rig.B, "sidecar_quota_settlements_total", "outcome=\"retry\"") - retriesBefore;
        cell.Check(depth > 0, "the outbox held the settlements while the API was down");
        cell.Live = "10 answers whole (`finish`, `[DONE]`)";
        cell.Resumers = "-";
        cell.Store = $"outbox depth {depth} while down; all 10 confirmed exactly once (each reservation changed by one call) {up.Elapsed.TotalSeconds:F1} s after the API came back";
        cell.Metrics = $"`sidecar_quota_settlements_total{{outcome=\"retry\"}}` +{retries}, `sidecar_quota_outbox_depth` {depth}";
    }

    private static async Task SlowReaderAsync(Rig rig, Cell cell)
    {
        var behindBefore = await rig.MetricAsync(rig.A, "sidecar_client_behind_total");
        var rssBefore = rig.A.ResidentBytes;
        // 2 MB of answer, unpaced, to a client that reads one event a second for five seconds.
        await using var slow = await PostAsync(rig, rig.A, "deltas:400 delta-bytes:5000 pace:0", readDelay: TimeSpan.FromSeconds(1), slowEvents: 5);
        // Meanwhile 20 other paced answers on the same replica.
        var others = new List<Client>();
        for (var i = 0; i < 20; i++)
        {
            others.Add(await PostAsync(rig, rig.A, "deltas:100 pace:10"));
        }

        // Watched from now: the moment the store shows the answer whole (the upstream drained), and
        // how many events the slow client had read by then, whatever the other answers take.
        var readByThen = -1;
        var draining = Rig.WaitAsync(
            async () =>
            {
                var read = slow.EventCount;
                if (await rig.StoredAsync(slow.MessageId) is { State: 1 } m)
                {
                    readByThen = read;
                    return m;
                }

                return null;
            },
            TimeSpan.FromSeconds(10));
        var othersTook = Stopwatch.StartNew();
        await Task.WhenAll(others.Select(o => o.ReadToEndAsync()));
        var othersElapsed = othersTook.Elapsed;
        var drained = await draining;
        var rssPeak = rig.A.ResidentBytes;
        await slow.ReadToEndAsync();

        var ending = CheckLive(cell, slow, expectError: null);
        foreach (var other in others)
        {
            CheckLive(cell, other, expectError: null);
            await other.DisposeAsync();
        }

        cell.Check(drained is not null && readByThen <= 5, drained is null ? "the upstream was not drained within 10 s" : $"the upstream was drained while the client had read {readByThen} events");
        cell.Check(othersElapsed < TimeSpan.FromSeconds(6), $"other answers took {othersElapsed.TotalSeconds:F1} s (paced 1.0 s)");
        var behind = await rig.MetricAsync(rig.A, "sidecar_client_behind_total") - behindBefore;
        cell.Check(behind == 1, $"client behind +{behind}");
        cell.Live = $"slow client: every event once ({slow.UpstreamEvents}), then {ending}; 20 other answers on the replica finished in {othersElapsed.TotalSeconds:F1} s (paced 1.0 s)";
        cell.Resumers = "-";
        cell.Store = $"the slow client's answer stored whole and `Completed` while it had read {readByThen} of its events: the upstream never waited";
        cell.Metrics = string.Create(CultureInfo.InvariantCulture, $"`sidecar_client_behind_total` +{behind}; replica RSS {rssBefore / 1048576.0:F0} → {rssPeak / 1048576.0:F0} MiB during the slow read");
    }

    private static Task<Client> PostAsync(Rig rig, ChildProcess sidecar, string scenario, string? bearer = null, TimeSpan readDelay = default, int slowEvents = 0) =>
        Client.PostAsync(rig.Http, rig.PortOf(sidecar), scenario, bearer, readDelay, slowEvents);

    /// <summary>Resumes <paramref name="live"/>'s answer on <paramref name="sidecar"/> and reads it in the background.</summary>
    private static Task<Client> FollowAsync(Rig rig, ChildProcess sidecar, Client live) =>
        Client.ResumeAsync(rig.Http, rig.PortOf(sidecar), live.Session, live.MessageId, live.ScenarioText);

    /// <summary>Checks a live answer: every upstream event once and in order, then the expected ending.</summary>
    private static string CheckLive(Cell cell, Client live, string? expectError)
    {
        var ending = CheckEnding(cell, live, expectError);
        var complete = expectError is null or "resume";
        cell.Check(complete ? Same(live.Upstream, live.Expected) : live.UpstreamEvents >= live.EventsBeforeFault,
            $"{live.UpstreamEvents} of {live.Expected.Count} upstream events ({(complete ? "all expected" : $"at least {live.EventsBeforeFault} expected")})");
        CheckTail(cell, live);
        return ending;
    }

    /// <summary>
    /// After the emulator's events (a prefix of its script, in order), a client's stored events
    /// may only be the sidecar's ending: data-finish, one error part, [DONE] (CheckEnding checks
    /// the order and the final [DONE], which a replay may add unstored). A repeated or skipped
    /// event ends the matching prefix early and fails here.
    /// </summary>
    private static void CheckTail(Cell cell, Client client)
    {
        var tail = client.Stored.Skip(client.UpstreamEvents).Select(e => Encoding.UTF8.GetString(e)).ToList();
        var wellFormed = tail.Count <= 3
            && tail.All(t => t.StartsWith("data: {\"type\":\"error\"", StringComparison.Ordinal)
                || t.StartsWith("data: {\"type\":\"data-finish\"", StringComparison.Ordinal)
                || t.StartsWith("data: [DONE]", StringComparison.Ordinal))
            && tail.Count(t => t.StartsWith("data: {\"type\":\"error\"", StringComparison.Ordinal)) <= 1;
        cell.Check(wellFormed, $"{client.Name}: after the upstream's {client.UpstreamEvents} events only the sidecar's ending ({tail.Count} events: {string.Join(" ", tail.Select(t => t[..Math.Min(30, t.Length)]))})");
    }

    private static void CheckResumer(Cell cell, Client resumer, Client live)
    {
        CheckEnding(cell, resumer, null, allowAny: true);
        CheckTail(cell, resumer);
        cell.Check(Same(resumer.Stored, live.Stored), "the resumer got exactly the live client's events");
    }

    /// <summary>The ending: a well-formed final part (finish, or one typed error part), then [DONE], then nothing.</summary>
    private static string CheckEnding(Cell cell, Client client, string? expectError, bool allowAny = false)
    {
        var parts = client.Parts;
        if (!client.Ended || parts.Count < 2 || parts[^1] != "[DONE]")
        {
            cell.Fail($"{client.Name}: no [DONE] at the end ({client.Error ?? "ended"})");
            return "no [DONE]";
        }

        var errors = parts.Where(p => p.StartsWith("{\"type\":\"error\"", StringComparison.Ordinal)).ToList();
        if (errors.Count == 0)
        {
            cell.Check(allowAny || expectError is null, $"{client.Name}: expected an error part ({expectError})");
            cell.Check(parts[^2].StartsWith("{\"type\":\"finish\"", StringComparison.Ordinal), $"{client.Name}: finish before [DONE]");
            return "`finish`, `[DONE]`";
        }

        cell.Check(errors.Count == 1, $"{client.Name}: one error part");
        using var part = JsonDocument.Parse(errors[0]);
        cell.Check(part.RootElement.EnumerateObject().Select(p => p.Name).SequenceEqual(["type", "errorText"]), $"{client.Name}: error part with exactly type and errorText");
        using var error = JsonDocument.Parse(part.RootElement.GetProperty("errorText").GetString()!);
        var type = error.RootElement.GetProperty("type").GetString();
        var category = error.RootElement.GetProperty("category").GetString();
        var reason = error.RootElement.TryGetProperty("metadata", out var m) && m.TryGetProperty("reason", out var r) ? r.GetString() : null;
        cell.Check(allowAny || expectError == reason || expectError == category, $"{client.Name}: error {type}/{category}/{reason}, expected {expectError}");
        return $"`error` {type} `category:\"{category}\"`{(reason is null ? string.Empty : $" ({reason})")}, `[DONE]`";
    }

    private static bool IsErrorPart(byte[] raw) => Encoding.UTF8.GetString(raw).StartsWith("data: {\"type\":\"error\"", StringComparison.Ordinal);

    private static bool Same(List<byte[]> a, List<byte[]> b) => a.Count == b.Count && a.Zip(b).All(p => p.First.AsSpan().SequenceEqual(p.Second));

    private static async Task<string?> ErrorCategoryAsync(HttpResponseMessage response)
    {
        try
        {
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return json.RootElement.TryGetProperty("category", out var c) ? c.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>One cell's outcome.</summary>
    private sealed class Cell(string name)
    {
        public string Name { get; } = name;

        public List<string> Failures { get; } = [];

        public bool Passed => Failures.Count == 0;

        public string Live { get; set; } = "-";

        public string Resumers { get; set; } = "-";

        public string Store { get; set; } = "-";

        public string Metrics { get; set; } = "-";

        public double Seconds { get; set; }

        public void Check(bool condition, string what)
        {
            if (!condition)
            {
                Fail(what);
            }
        }

        public void Fail(string what) => Failures.Add(what);
    }

    /// <summary>One SSE client of a chat answer or a resume, reading in the background.</summary>
    private sealed class Client : IAsyncDisposable
    {
        private readonly List<byte[]> _events = [];
        private readonly List<long> _at = [];
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly HttpResponseMessage _response;
        private Task _reading = Task.CompletedTask;
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private Client(string name, string session, HttpResponseMessage response, string messageId, string scenario)
        {
            Name = name;
            Session = session;
            ScenarioText = scenario;
            _response = response;
            MessageId = messageId;
            var parsed = Scenario.Parse("/scenario " + scenario, new Scenario(), out var invalid);
            if (invalid is not null)
            {
                throw new InvalidOperationException(invalid);
            }

            Expected = [.. AnswerScript.Build(parsed, messageId, new RequestInfo(string.Empty, session, string.Empty, string.Empty))];
        }

        public string Name { get; }

        public string Session { get; }

        public string MessageId { get; }

        public string ScenarioText { get; }

        /// <summary>How many events the client had read when the cell injected its fault.</summary>
        public int EventsBeforeFault { get; set; }

        /// <summary>What the emulator sends for this answer (its script is deterministic).</summary>
        public List<byte[]> Expected { get; }

        public bool Ended { get; private set; }

        public string? Error { get; private set; }

        public int EventCount
        {
            get
            {
                lock (_events)
                {
                    return _events.Count;
                }
            }
        }

        /// <summary>Events that carried an id (stored ones), without the id line.</summary>
        public List<byte[]> Stored { get; } = [];

        /// <summary>Stored events that came from the upstream (not the sidecar's endings).</summary>
        public List<byte[]> Upstream => [.. Stored.Take(Math.Min(Stored.Count, UpstreamEvents))];

        public int UpstreamEvents => Stored.TakeWhile((e, i) => i < Expected.Count && e.AsSpan().SequenceEqual(Expected[i])).Count();

        /// <summary>The data of every event, in order (comments dropped).</summary>
        public List<string> Parts
        {
            get
            {
                lock (_events)
                {
                    return [.. _events.Select(e => string.Join('\n', Encoding.UTF8.GetString(e).Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..]))).Where(d => d.Length > 0)];
                }
            }
        }

        public static async Task<Client> PostAsync(HttpClient http, int port, string scenario, string? bearer, TimeSpan readDelay, int slowEvents)
        {
            var session = "f" + Guid.NewGuid().ToString("N")[..12];
            var body = JsonSerializer.Serialize(new { messages = new[] { new { id = "u_" + session, role = "user", parts = new[] { new { type = "text", text = "/scenario " + scenario } } } } });
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://127.0.0.1:{port}/api/v/c010/{session}")) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (bearer is not null)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
            }

            var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"chat POST answered {(int)response.StatusCode}");
            }

            var client = new Client("live client", session, response, response.Headers.GetValues("x-message-id").Single(), scenario);
            client.Start(readDelay, slowEvents);
            return client;
        }

        public static async Task<Client> ResumeAsync(HttpClient http, int port, string session, string messageId, string scenario)
        {
            var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/api/v/c010/{session}"), HttpCompletionOption.ResponseHeadersRead);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"resume answered {(int)response.StatusCode}");
            }

            var client = new Client("resumer", session, response, messageId, scenario);
            client.Start(default, 0);
            return client;
        }

        private void Start(TimeSpan readDelay, int slowEvents) => _reading = Task.Run(() => ReadAsync(readDelay, slowEvents));

        private async Task ReadAsync(TimeSpan readDelay, int slowEvents)
        {
            try
            {
                await using var body = await _response.Content.ReadAsStreamAsync();
                var buffer = new byte[slowEvents > 0 ? 256 : 64 * 1024];
                var events = new SseSplitter();
                int read;
                while ((read = await body.ReadAsync(buffer)) > 0)
                {
                    events.Append(buffer.AsSpan(0, read));
                    while (events.TryTake(out var evt))
                    {
                        Add(evt);
                        if (slowEvents > 0 && EventCount <= slowEvents)
                        {
                            await Task.Delay(readDelay);
                        }
                    }
                }

                Ended = true;
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
            {
                Error = ex.GetType().Name;
            }
            finally
            {
                _done.TrySetResult();
                Signal();
            }
        }

        private void Add(byte[] evt)
        {
            var text = Encoding.UTF8.GetString(evt);
            if (text.StartsWith(':'))
            {
                return;
            }

            lock (_events)
            {
                _events.Add(evt);
                _at.Add(Stopwatch.GetTimestamp());
                if (text.StartsWith("id: ", StringComparison.Ordinal))
                {
                    Stored.Add(evt[(Array.IndexOf(evt, (byte)'\n') + 1)..]);
                }
            }

            Signal();
        }

        private void Signal() => Interlocked.Exchange(ref _changed, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

        public async Task WaitForEventsAsync(int count)
        {
            var deadline = Stopwatch.StartNew();
            while (EventCount < count)
            {
                var changed = Volatile.Read(ref _changed).Task;
                if (_done.Task.IsCompleted || deadline.Elapsed > Bound)
                {
                    throw new InvalidOperationException($"{Name} ended or stalled at {EventCount} events, waiting for {count}");
                }

                await Task.WhenAny(changed, Task.Delay(500));
            }
        }

        public async Task ReadToEndAsync() => await _done.Task.WaitAsync(Bound);

        /// <summary>The largest time between two consecutive events, in ms.</summary>
        public double LargestGapMs()
        {
            lock (_events)
            {
                return _at.Zip(_at.Skip(1)).Select(p => Stopwatch.GetElapsedTime(p.First, p.Second).TotalMilliseconds).DefaultIfEmpty(0).Max();
            }
        }

        public async ValueTask DisposeAsync()
        {
            _response.Dispose();
            try
            {
                await _reading;
            }
            catch (Exception)
            {
                // Disposed mid-read.
            }
        }
    }
}
