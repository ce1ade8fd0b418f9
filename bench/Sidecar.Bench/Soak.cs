using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using ChatUpstream;

namespace Sidecar.Bench;

/// <summary>
/// The soak: many concurrent chat answers through two sidecar replicas sharing Redis, for minutes,
/// with clients that disconnect at random and resume (on either replica, with or without
/// <c>Last-Event-ID</c>). Every answer a client assembles is compared, event by event, with what
/// the emulator sends for it (its script is deterministic): nothing may be lost or repeated. The
/// replicas' memory is sampled every ten seconds: it must not grow under a steady load.
/// </summary>
internal static class Soak
{
    public static async Task<int> RunAsync(string root, string configuration, int streams, TimeSpan duration, int paceMs)
    {
        await using var rig = await Rig.StartAsync(root, configuration, "soak");
        var totals = new Totals();
        var scenario = $"deltas:40 pace:{paceMs}";
        using var stop = new CancellationTokenSource(duration);
        var started = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, streams).Select(i => Task.Run(() => WorkAsync(rig, scenario, new Random(i), totals, stop.Token))).ToList();

        var samples = new List<Sample>();
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10), stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            var sample = await SampleAsync(rig, started.Elapsed, totals);
            samples.Add(sample);
            Console.Error.WriteLine(sample.Line);
        }

        await Task.WhenAll(workers);
        var ended = started.Elapsed;
        // At rest: the answers are over; what the replicas still hold is what they keep.
        await Task.Delay(TimeSpan.FromSeconds(10));
        var rest = await SampleAsync(rig, started.Elapsed, totals);

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"soak: {streams} concurrent clients, {ended.TotalMinutes:F1} min, answers `{scenario}` (about {40 * paceMs / 1000.0 + 0.3:F1} s each), on replicas A and B (Redis tee)"));
        Console.WriteLine();
        Console.WriteLine("| answers | events checked | disconnects | resumes (with Last-Event-ID / from the start) | completed while away (checked in the store) | lost | repeated | wrong bytes | failed requests | typed error endings | resume-lost notices |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {totals.Answers} | {totals.Events} | {totals.Disconnects} | {totals.Resumes} ({totals.ResumesWithId} / {totals.Resumes - totals.ResumesWithId}) | {totals.CompletedAway} | {totals.Lost} | {totals.Repeated} | {totals.Wrong} | {totals.Failed} | {totals.ErrorEndings} | {totals.ResumeLostNotices} |"));
        Console.WriteLine();
        Console.WriteLine("| elapsed | answers | RSS A (MiB) | RSS B (MiB) | GC heap A (MiB) | GC heap B (MiB) |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var s in samples.Where((_, i) => i % 6 == 5 || i == 0).Append(rest))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {s.Elapsed.TotalMinutes:F1} min{(ReferenceEquals(s, rest) ? " (at rest)" : string.Empty)} | {s.Answers} | {s.RssA / 1048576.0:F0} | {s.RssB / 1048576.0:F0} | {s.HeapA / 1048576.0:F0} | {s.HeapB / 1048576.0:F0} |"));
        }

        // Memory flat: the last sample's heap is not above the one at about a minute by more than a
        // margin. Judged only on runs of two minutes or more (shorter ones are all warm-up).
        var judged = samples.Count >= 12;
        var warm = judged ? samples[6] : null;
        var last = samples.LastOrDefault();
        var flat = !judged || (last!.HeapA <= warm!.HeapA * 1.5 + (32 << 20) && last.HeapB <= warm.HeapB * 1.5 + (32 << 20));
        var clean = totals.Lost == 0 && totals.Repeated == 0 && totals.Wrong == 0 && totals.Failed == 0 && totals.ErrorEndings == 0 && totals.ResumeLostNotices == 0 && totals.Answers > 0;
        Console.WriteLine();
        Console.WriteLine($"{(clean ? "no event lost or repeated" : "LOSS OR FAILURES")}; memory {(!judged ? "not judged (run shorter than two minutes)" : flat ? "flat" : "GREW")}");
        return clean && flat ? 0 : 1;
    }

    private static async Task<Sample> SampleAsync(Rig rig, TimeSpan elapsed, Totals totals)
    {
        var heapA = await rig.MetricAsync(rig.A, "dotnet_gc_last_collection_heap_size_bytes");
        var heapB = await rig.MetricAsync(rig.B, "dotnet_gc_last_collection_heap_size_bytes");
        var sample = new Sample(elapsed, Interlocked.Read(ref totals.Answers), rig.A.ResidentBytes, rig.B.ResidentBytes, (long)heapA, (long)heapB);
        return sample;
    }

    /// <summary>One client: answers one after another until stopped, disconnecting and resuming at random.</summary>
    private static async Task WorkAsync(Rig rig, string scenario, Random random, Totals totals, CancellationToken stop)
    {
        var parsed = Scenario.Parse("/scenario " + scenario, new Scenario(), out _);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await AnswerAsync(rig, scenario, parsed, random, totals);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException or InvalidOperationException)
            {
                Interlocked.Increment(ref totals.Failed);
                Console.Error.WriteLine($"failed: {ex.GetType().Name}: {ex.Message}");
            }
        }
    }

    private static async Task AnswerAsync(Rig rig, string scenario, Scenario parsed, Random random, Totals totals)
    {
        var session = "k" + Guid.NewGuid().ToString("N")[..12];
        var body = JsonSerializer.Serialize(new { messages = new[] { new { id = "u_" + session, role = "user", parts = new[] { new { type = "text", text = "/scenario " + scenario } } } } });
        using var request = new HttpRequestMessage(HttpMethod.Post, Uri(rig, random, session)) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        var response = await rig.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"chat POST answered {(int)response.StatusCode}");
        }

        var messageId = response.Headers.GetValues("x-message-id").Single();
        var path = new List<string> { "post " + request.RequestUri!.Port };
        var expected = AnswerScript.Build(parsed, messageId, new RequestInfo(string.Empty, session, string.Empty, string.Empty));
        var assembled = new List<byte[]>();
        var leave = random.NextDouble() < 0.3;
        try
        {
            while (true)
            {
                // Disconnects after a random number of events, then resumes at once or a little later.
                var leaveAfter = leave ? random.Next(1, expected.Count) : int.MaxValue;
                var finished = await ReadAsync(response, assembled, leaveAfter, totals);
                response.Dispose();
                if (finished)
                {
                    break;
                }

                Interlocked.Increment(ref totals.Disconnects);
                path.Add($"left after {assembled.Count}");
                await Task.Delay(random.Next(0, 500));
                using var resume = new HttpRequestMessage(HttpMethod.Get, Uri(rig, random, session));
                var withId = assembled.Count > 0 && random.NextDouble() < 0.8;
                if (withId)
                {
                    resume.Headers.Add("Last-Event-ID", (assembled.Count - 1).ToString(CultureInfo.InvariantCulture));
                    Interlocked.Increment(ref totals.ResumesWithId);
                }
                else
                {
                    // Without an id the replay starts again from the first event: the client starts over.
                    assembled.Clear();
                }

                Interlocked.Increment(ref totals.Resumes);
                response = await rig.Http.SendAsync(resume, HttpCompletionOption.ResponseHeadersRead);
                path.Add($"resume {resume.RequestUri!.Port}{(withId ? " from " + assembled.Count : string.Empty)}: {(int)response.StatusCode}");
                if (response.StatusCode == HttpStatusCode.NoContent)
                {
                    // The answer completed while the client was away (a client then loads the saved
                    // message): what it missed is checked in the store.
                    response.Dispose();
                    Interlocked.Increment(ref totals.CompletedAway);
                    var stored = await rig.StoredAsync(messageId);
                    path.Add($"store holds {stored?.Events.Count.ToString(CultureInfo.InvariantCulture) ?? "nothing"} (state {stored?.State})");
                    foreach (var evt in stored?.Events.Skip(assembled.Count) ?? [])
                    {
                        assembled.Add(evt);
                    }

                    break;
                }

                if (response.StatusCode != HttpStatusCode.OK)
                {
                    throw new InvalidOperationException($"resume answered {(int)response.StatusCode}");
                }

                leave = random.NextDouble() < 0.15;
            }
        }
        finally
        {
            response.Dispose();
        }

        var lostBefore = Interlocked.Read(ref totals.Lost) + Interlocked.Read(ref totals.Wrong);
        Compare(expected, assembled, totals);
        if (Interlocked.Read(ref totals.Lost) + Interlocked.Read(ref totals.Wrong) != lostBefore)
        {
            Console.Error.WriteLine($"mismatch: message {messageId}: {assembled.Count(a => a.Length > 0)} of {expected.Count} events; path: {string.Join(" → ", path)}");
        }

        Interlocked.Increment(ref totals.Answers);
    }

    private static Uri Uri(Rig rig, Random random, string session) =>
        new($"http://127.0.0.1:{rig.PortOf(random.Next(2) == 0 ? rig.A : rig.B)}/api/v/c010/{session}");

    /// <summary>
    /// Reads events into <paramref name="assembled"/> by their ids: an id other than the next one
    /// expected is a repeat or a gap. True at the end of the body; false when the client left.
    /// </summary>
    private static async Task<bool> ReadAsync(HttpResponseMessage response, List<byte[]> assembled, int leaveAfter, Totals totals)
    {
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[16 * 1024];
        var events = new SseSplitter();
        var read = 0;
        int n;
        while ((n = await body.ReadAsync(buffer)) > 0)
        {
            events.Append(buffer.AsSpan(0, n));
            while (events.TryTake(out var evt))
            {
                if (evt.Length < 4 || evt[0] != (byte)'i' || evt[1] != (byte)'d')
                {
                    // A comment, or a part of the sidecar's own for the live client only: the
                    // resume-lost notices (an error part, a data-resume-unavailable part) count.
                    var text = Encoding.UTF8.GetString(evt);
                    if (text.StartsWith("data: {\"type\":\"error\"", StringComparison.Ordinal) || text.Contains("data-resume-unavailable", StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref totals.ResumeLostNotices);
                    }

                    continue;
                }

                var newline = Array.IndexOf(evt, (byte)'\n');
                var id = long.Parse(Encoding.ASCII.GetString(evt, 4, newline - 4), CultureInfo.InvariantCulture);
                if (id < assembled.Count)
                {
                    Interlocked.Increment(ref totals.Repeated);
                    continue;
                }

                if (id > assembled.Count)
                {
                    Interlocked.Add(ref totals.Lost, id - assembled.Count);
                    while (assembled.Count < id)
                    {
                        assembled.Add([]);
                    }
                }

                assembled.Add(evt[(newline + 1)..]);
                if (++read >= leaveAfter)
                {
                    return false;
                }
            }
        }

        return true;
    }

    private static void Compare(List<byte[]> expected, List<byte[]> assembled, Totals totals)
    {
        for (var i = 0; i < Math.Max(expected.Count, assembled.Count); i++)
        {
            if (i >= assembled.Count)
            {
                Interlocked.Add(ref totals.Lost, expected.Count - assembled.Count);
                break;
            }

            if (i >= expected.Count)
            {
                if (Encoding.UTF8.GetString(assembled[i]).StartsWith("data: {\"type\":\"error\"", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref totals.ErrorEndings);
                }
                else
                {
                    Interlocked.Increment(ref totals.Wrong);
                }

                continue;
            }

            if (assembled[i].Length > 0 && !assembled[i].AsSpan().SequenceEqual(expected[i]))
            {
                Interlocked.Increment(ref totals.Wrong);
            }
        }

        Interlocked.Add(ref totals.Events, assembled.Count);
    }

    private sealed class Totals
    {
        public long Answers;
        public long Events;
        public long Disconnects;
        public long Resumes;
        public long ResumesWithId;
        public long CompletedAway;
        public long Lost;
        public long Repeated;
        public long Wrong;
        public long Failed;
        public long ErrorEndings;
        public long ResumeLostNotices;
    }

    private sealed record Sample(TimeSpan Elapsed, long Answers, long RssA, long RssB, long HeapA, long HeapB)
    {
        public string Line => string.Create(CultureInfo.InvariantCulture, $"{Elapsed.TotalSeconds,6:F0} s  answers {Answers,7}  RSS A {RssA / 1048576.0,5:F0} MiB  B {RssB / 1048576.0,5:F0} MiB  heap A {HeapA / 1048576.0,5:F0} MiB  B {HeapB / 1048576.0,5:F0} MiB");
    }
}
