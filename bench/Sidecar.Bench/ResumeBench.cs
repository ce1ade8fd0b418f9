using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Sidecar.Bench;

/// <summary>
/// The sidecar's resume against the service's own (npm resumable-stream 2.2.x, bench/resumable) on
/// the same Redis: a live stream of N events produced through instance A and resumed through
/// instance B (time to first byte, time to the whole replay), and what a resume gets when the
/// producing instance has died.
/// </summary>
internal static class ResumeBench
{
    // The stores' key prefixes: the sidecar's default, and the one the baseline build's replicas get.
    private const string SidecarPrefix = "sidecar";
    private const string BaselinePrefix = "baseline";

    public static async Task<int> RunAsync(string root, string configuration, int[] sizes)
    {
        var peerDirectory = Path.Combine(root, "bench", "resumable");
        if (!Directory.Exists(Path.Combine(peerDirectory, "node_modules", "resumable-stream")))
        {
            using var npm = Process.Start(new ProcessStartInfo("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"]) { WorkingDirectory = peerDirectory })!;
            await npm.WaitForExitAsync();
        }

        var emulatorDll = Path.Combine(root, "samples/ChatUpstream/bin", configuration, "net10.0/ChatUpstream.dll");
        var sidecarDll = Path.Combine(root, "src/Sidecar/bin", configuration, "net10.0/Sidecar.dll");
        var redisPort = ChildProcess.FreePort();
        using var redis = ChildProcess.StartRedis(redisPort);
        var peers = new List<Process>();
        try
        {
            var (peerA, peerAPort) = await StartPeerAsync(peerDirectory, redisPort);
            peers.Add(peerA);
            var (peerB, peerBPort) = await StartPeerAsync(peerDirectory, redisPort);
            peers.Add(peerB);
            var emulatorPort = ChildProcess.FreePort();
            using var emulator = await ChildProcess.StartAsync(emulatorDll, ["--urls", $"http://127.0.0.1:{emulatorPort}", "--Emulator:DefaultPaceMs=0", "--Emulator:ResumableStreams=false"], emulatorPort, "/");
            string[] shared = [$"--Sidecar:Store:Redis=127.0.0.1:{redisPort}", "--Sidecar:Store:LeaseDuration=00:00:03", "--Sidecar:Streams:HeartbeatInterval=00:00:00"];
            var (sidecarA, sidecarAPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, [.. shared, "--Sidecar:Resume:ReplicaId=a"]);
            using var sidecarAProcess = sidecarA;
            var (sidecarB, sidecarBPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, [.. shared, "--Sidecar:Resume:ReplicaId=b"]);
            using var sidecarBProcess = sidecarB;

            // RESUME_BASELINE=<another build's Sidecar.dll>: a pair of its replicas beside these (own
            // key prefix, same Redis), measured in the same iterations, for before/after in one run.
            var baselineDll = Environment.GetEnvironmentVariable("RESUME_BASELINE");
            // RESUME_BASELINE_ARGS="--Name=value ...": more settings for that pair (e.g. the same build with a setting changed).
            var baselineArgs = ChildProcess.ArgumentsFrom("RESUME_BASELINE_ARGS");
            string[] baselineShared = [.. shared, $"--Sidecar:Store:KeyPrefix={BaselinePrefix}", .. baselineArgs];
            (ChildProcess? Process, int Port) baselineAStart = string.IsNullOrEmpty(baselineDll) ? default
                : await ChildProcess.StartSidecarAsync(baselineDll, emulatorPort, [.. baselineShared, "--Sidecar:Resume:ReplicaId=ba"]);
            using var baselineA = baselineAStart.Process;
            (ChildProcess? Process, int Port) baselineBStart = string.IsNullOrEmpty(baselineDll) ? default
                : await ChildProcess.StartSidecarAsync(baselineDll, emulatorPort, [.. baselineShared, "--Sidecar:Resume:ReplicaId=bb"]);
            using var baselineB = baselineBStart.Process;
            (int A, int B)? baselinePorts = baselineA is null ? null : (baselineAStart.Port, baselineBStart.Port);

            using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = int.MaxValue }) { Timeout = TimeSpan.FromMinutes(2) };
            Console.WriteLine("A live stream of N events produced through instance A, resumed (full replay) through instance B on the same Redis; ms");
            using var store = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{redisPort}");
            Console.WriteLine("| events | resumes | resumable-stream first byte p50 / p99 | whole replay p50 / p99 | sidecar first byte p50 / p99 | whole replay p50 / p99 | sidecar, store caught up: first byte p50 / p99 | whole replay p50 / p99 |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|");
            // Every size once unmeasured first: the .NET processes and Node tier their code up
            // over the first tens of resumes of a size (a first measured block of 2,000-event
            // resumes right after a short warm-up came out up to 2.4-5.5x slower, for every target,
            // than the fastest block after it), and a sidecar serving for days runs warm.
            foreach (var (size, measured) in sizes.Select(s => (s, false)).Concat(sizes.Select(s => (s, true))))
            {
                var resumes = size >= 20_000 ? 10 : 30;
                var peer = new List<(double First, double Whole)>();
                var sidecar = new List<(double First, double Whole)>();
                var caughtUp = new List<(double First, double Whole)>();
                var baselineAtOnce = new List<(double First, double Whole)>();
                var baselineCaughtUp = new List<(double First, double Whole)>();
                for (var r = 0; r < resumes; r++)
                {
                    var p = await PeerOnceAsync(http, peerAPort, peerBPort, size);
                    // The baseline build, when there is one, goes first every other iteration.
                    var baselineFirst = baselinePorts is not null && r % 2 != 0;
                    if (baselineFirst)
                    {
                        await BaselineOnceAsync();
                    }

                    var s = await SidecarOnceAsync(http, sidecarAPort, sidecarBPort, emulatorPort, size, null, SidecarPrefix);
                    var c = await SidecarOnceAsync(http, sidecarAPort, sidecarBPort, emulatorPort, size, store, SidecarPrefix);
                    if (baselinePorts is not null && !baselineFirst)
                    {
                        await BaselineOnceAsync();
                    }

                    if (measured)
                    {
                        peer.Add(p);
                        sidecar.Add(s);
                        caughtUp.Add(c);
                    }

                    async Task BaselineOnceAsync()
                    {
                        var (a, b) = baselinePorts!.Value;
                        var bs = await SidecarOnceAsync(http, a, b, emulatorPort, size, null, BaselinePrefix);
                        var bc = await SidecarOnceAsync(http, a, b, emulatorPort, size, store, BaselinePrefix);
                        if (measured)
                        {
                            baselineAtOnce.Add(bs);
                            baselineCaughtUp.Add(bc);
                        }
                    }
                }

                if (!measured)
                {
                    continue;
                }

                Console.WriteLine($"| {size} | {resumes} | {Cells(peer)} | {Cells(sidecar)} | {Cells(caughtUp)} |");
                if (baselinePorts is not null)
                {
                    Console.WriteLine($"| {size} (baseline build) | {resumes} | - | - | {Cells(baselineAtOnce)} | {Cells(baselineCaughtUp)} |");
                }
            }

            // The producing instance dies (SIGKILL) with a live stream; a resume goes to the other one.
            Console.WriteLine("When the producing instance has died (SIGKILL), a resume through the other instance:");
            var peerId = "dead" + Guid.NewGuid().ToString("N")[..8];
            await ReadEventsAsync(http, HttpMethod.Post, $"http://127.0.0.1:{peerAPort}/produce/{peerId}?n=2000", 2000, keepReading: false).Reached;
            peerA.Kill(entireProcessTree: true);
            await peerA.WaitForExitAsync();
            Console.WriteLine("- resumable-stream: " + await DescribeResumeAsync(http, $"http://127.0.0.1:{peerBPort}/resume/{peerId}"));

            var session = "dead" + Guid.NewGuid().ToString("N")[..8];
            await ReadEventsAsync(http, HttpMethod.Post, $"http://127.0.0.1:{sidecarAPort}/api/v/c010/{session}", 2000, keepReading: false, scenario: "deltas:2000 gate:2000").Reached;
            sidecarA.Dispose();
            Console.WriteLine("- sidecar (lease 3 s): " + await DescribeResumeAsync(http, $"http://127.0.0.1:{sidecarBPort}/api/v/c010/{session}"));
            return 0;
        }
        finally
        {
            foreach (var peer in peers.Where(p => !p.HasExited))
            {
                peer.Kill(entireProcessTree: true);
            }

            redis.Kill();
            await redis.WaitForExitAsync();
        }
    }

    private static async Task<(double First, double Whole)> PeerOnceAsync(HttpClient http, int producer, int resumer, int size)
    {
        var id = "rs" + Guid.NewGuid().ToString("N")[..12];
        var production = ReadEventsAsync(http, HttpMethod.Post, $"http://127.0.0.1:{producer}/produce/{id}?n={size}", size, keepReading: true);
        await production.Reached;
        var result = await TimeResumeAsync(http, $"http://127.0.0.1:{resumer}/resume/{id}", size);
        using var finish = await http.PostAsync(new Uri($"http://127.0.0.1:{producer}/finish/{id}"), null);
        await production.Ended;
        return result;
    }

    /// <summary>
    /// One resume of a live sidecar stream. With <paramref name="settle"/>, only once the producer's
    /// store writer has caught up with what its client got (as for a stream streaming at a model's
    /// pace); without, at once (the unpaced production may still be being written to Redis).
    /// </summary>
    private static async Task<(double First, double Whole)> SidecarOnceAsync(HttpClient http, int producer, int resumer, int emulatorPort, int size, StackExchange.Redis.ConnectionMultiplexer? settle, string keyPrefix)
    {
        var session = "sc" + Guid.NewGuid().ToString("N")[..12];
        var production = ReadEventsAsync(http, HttpMethod.Post, $"http://127.0.0.1:{producer}/api/v/c010/{session}", size, keepReading: true, scenario: $"deltas:{size} gate:{size}");
        await production.Reached;
        if (settle is not null)
        {
            var meta = $"{keyPrefix}:{{msg:{await production.MessageIdTask}}}:meta";
            var waited = Stopwatch.StartNew();
            while (((long?)await settle.GetDatabase().HashGetAsync(meta, "count") ?? 0) < size)
            {
                if (waited.Elapsed > TimeSpan.FromSeconds(10))
                {
                    // Never measured as caught up when it is not (a wrong key prefix reads nothing).
                    throw new InvalidOperationException($"{meta} did not reach {size} stored events within 10 s");
                }

                await Task.Delay(1);
            }
        }

        var result = await TimeResumeAsync(http, $"http://127.0.0.1:{resumer}/api/v/c010/{session}", size);
        using var release = await http.PostAsync(new Uri($"http://127.0.0.1:{emulatorPort}/__emulator/release/{await production.MessageIdTask}"), null);
        await production.Ended;
        return result;
    }

    /// <summary>From sending the resume to its first byte, and to its size-th event.</summary>
    private static async Task<(double First, double Whole)> TimeResumeAsync(HttpClient http, string url, int size)
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        var first = -1.0;
        var events = 0;
        var previous = (byte)0;
        int read;
        while (events < size && (read = await body.ReadAsync(buffer)) > 0)
        {
            if (first < 0)
            {
                first = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }

            for (var i = 0; i < read; i++)
            {
                events += buffer[i] == (byte)'\n' && previous == (byte)'\n' ? 1 : 0;
                previous = buffer[i];
            }
        }

        return (first, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private sealed class Production
    {
        public Task Reached { get; init; } = Task.CompletedTask;

        public Task Ended { get; init; } = Task.CompletedTask;

        public Task<string?> MessageIdTask { get; init; } = Task.FromResult<string?>(null);
    }

    /// <summary>Reads a producing request's events; Reached completes at the size-th, Ended at the end of the body.</summary>
    private static Production ReadEventsAsync(HttpClient http, HttpMethod method, string url, int size, bool keepReading, string? scenario = null)
    {
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var messageId = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var production = new Production { Reached = reached.Task };
        var ended = ReadAsync();
        return new Production { Reached = reached.Task, Ended = ended, MessageIdTask = messageId.Task };

        async Task ReadAsync()
        {
            using var request = new HttpRequestMessage(method, url);
            if (scenario is not null)
            {
                request.Content = new StringContent($$"""{"messages":[{"id":"u","role":"user","parts":[{"type":"text","text":"/scenario {{scenario}}"}]}]}""", Encoding.UTF8, "application/json");
            }

            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            messageId.TrySetResult(response.Headers.TryGetValues("x-message-id", out var ids) ? ids.First() : null);
            await using var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64 * 1024];
            var events = 0;
            var previous = (byte)0;
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                for (var i = 0; i < read; i++)
                {
                    events += buffer[i] == (byte)'\n' && previous == (byte)'\n' ? 1 : 0;
                    previous = buffer[i];
                }

                if (events >= size)
                {
                    reached.TrySetResult();
                    if (!keepReading)
                    {
                        return;
                    }
                }
            }

            reached.TrySetResult();
        }
    }

    /// <summary>How a resume ended, and after how long (bounded at 60 s).</summary>
    private static async Task<string> DescribeResumeAsync(HttpClient http, string url)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var text = await response.Content.ReadAsStringAsync(timeout.Token);
            var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Length;
            var ending = text.Contains("producer_lost", StringComparison.Ordinal) ? "a typed error part (producer_lost) then [DONE]"
                : text.TrimEnd().EndsWith("[DONE]", StringComparison.Ordinal) ? "[DONE]"
                : text.Length > 200 ? "no ending" : text.Trim();
            return string.Create(CultureInfo.InvariantCulture, $"HTTP {(int)response.StatusCode} after {elapsed:F0} ms, {events} events, {ending}");
        }
        catch (OperationCanceledException)
        {
            return "no answer within 60 s (the request hangs)";
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            return string.Create(CultureInfo.InvariantCulture, $"failed after {Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms: {ex.GetType().Name}");
        }
    }

    private static async Task<(Process Process, int Port)> StartPeerAsync(string directory, int redisPort)
    {
        var port = ChildProcess.FreePort();
        var info = new ProcessStartInfo("node", ["producer.mjs", port.ToString(CultureInfo.InvariantCulture)]) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        info.Environment["REDIS_URL"] = $"redis://127.0.0.1:{redisPort}";
        var process = Process.Start(info)!;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var response = await probe.GetAsync(new Uri($"http://127.0.0.1:{port}/ready"));
                if (response.IsSuccessStatusCode)
                {
                    return (process, port);
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        throw new InvalidOperationException("the resumable-stream peer did not start");
    }

    private static double P<T>(List<T> values, Func<T, double> select, double q) => ChildProcess.Percentile([.. values.Select(select).Order()], q);

    /// <summary>One target's two table cells: first byte p50 / p99, whole replay p50 / p99 (ms).</summary>
    private static string Cells(List<(double First, double Whole)> resumes) => string.Create(CultureInfo.InvariantCulture,
        $"{P(resumes, x => x.First, 0.5):F2} / {P(resumes, x => x.First, 0.99):F2} | {P(resumes, x => x.Whole, 0.5):F2} / {P(resumes, x => x.Whole, 0.99):F2}");
}
