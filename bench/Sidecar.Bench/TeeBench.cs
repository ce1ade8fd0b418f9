using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Sidecar.Bench;

/// <summary>
/// The store tee's cost, side by side in one run: 200 concurrent unpaced streams of about 200
/// events, direct to the emulator, through the sidecar without a store, with the in-memory store,
/// and with the Redis tee; Redis work per event; resume time to first byte of a live
/// 2,000-event stream.
/// </summary>
internal static partial class TeeBench
{
    public static async Task<int> RunAsync(string root, string configuration, int concurrency, int rounds)
    {
        var emulatorDll = Path.Combine(root, "samples/ChatUpstream/bin", configuration, "net10.0/ChatUpstream.dll");
        var sidecarDll = Path.Combine(root, "src/Sidecar/bin", configuration, "net10.0/Sidecar.dll");
        var redisPort = ChildProcess.FreePort();
        using var redis = ChildProcess.StartRedis(redisPort);
        try
        {
            await WaitForPortAsync(redisPort);
            var emulatorPort = ChildProcess.FreePort();
            using var emulator = await ChildProcess.StartAsync(emulatorDll, ["--urls", $"http://127.0.0.1:{emulatorPort}", "--Emulator:DefaultPaceMs=0", "--Emulator:ResumableStreams=false"], emulatorPort, "/");
            var totals = new Dictionary<string, string> { ["Logging__LogLevel__Sidecar.Streams.Store.StoreWriter"] = "Information" };
            var (untee, unteePort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, ["--Sidecar:Store:Enabled=false"], totals);
            using var noTeeSidecar = untee;
            var (memory, memoryPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, [], totals);
            var (teed, teedPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, [$"--Sidecar:Store:Redis=127.0.0.1:{redisPort}"], totals);
            using var memorySidecar = memory;
            using var redisSidecar = teed;

            using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = int.MaxValue }) { Timeout = TimeSpan.FromMinutes(2) };
            var targets = new (string Name, int Port)[] { ("direct", emulatorPort), ("sidecar, no tee", unteePort), ("sidecar, in-memory store", memoryPort), ("sidecar, Redis tee", teedPort) };
            // Whose CPU a target's rounds cost: the proxy's own (none for direct), and Redis's.
            var proxies = new Dictionary<string, Func<TimeSpan>>
            {
                ["direct"] = () => TimeSpan.Zero,
                ["sidecar, no tee"] = () => untee.CpuTime,
                ["sidecar, in-memory store"] = () => memory.CpuTime,
                ["sidecar, Redis tee"] = () => teed.CpuTime,
            };
            var elapsed = targets.ToDictionary(t => t.Name, _ => 0.0);
            var events = targets.ToDictionary(t => t.Name, _ => 0L);

            // Warm-up, then rounds in rotating order so that machine noise falls on all alike.
            foreach (var target in targets)
            {
                await RunRoundAsync(http, target.Port, 20, "warm");
            }

            var redisBefore = await RedisStatsAsync(redisPort);
            // CPU over the whole measured phase: the store writer works on after a round's
            // clients are done, and an idle sidecar costs next to nothing between its rounds.
            var cpuBefore = proxies.ToDictionary(p => p.Key, p => p.Value());
            var redisCpuBefore = ChildProcess.CpuTimeOf(redis);
            var redisEvents = 0L;
            for (var round = 0; round < rounds; round++)
            {
                for (var t = 0; t < targets.Length; t++)
                {
                    var target = targets[(t + round) % targets.Length];
                    var (seconds, count) = await RunRoundAsync(http, target.Port, concurrency, $"r{round}");
                    elapsed[target.Name] += seconds;
                    events[target.Name] += count;
                    if (target.Port == teedPort)
                    {
                        redisEvents += count;
                    }
                }
            }

            var redisAfter = await RedisStatsAsync(redisPort);
            var proxyCpu = proxies.ToDictionary(p => p.Key, p => p.Value() - cpuBefore[p.Key]);
            var redisCpu = ChildProcess.CpuTimeOf(redis) - redisCpuBefore;
            var resumeMemory = await ResumeFirstByteAsync(http, memoryPort, emulatorPort, 200);
            var resumeRedis = await ResumeFirstByteAsync(http, teedPort, emulatorPort, 200);

            await memorySidecar.StopAsync();
            await redisSidecar.StopAsync();
            var (batches, stored) = WriterTotals(redisSidecar);

            Console.WriteLine($"{concurrency} concurrent unpaced streams of ~200 events, {rounds} rounds per target, rotating order");
            Console.WriteLine("target                      events/s   vs direct   vs no tee   proxy CPU/event   Redis CPU/event");
            var baseline = events["direct"] / elapsed["direct"];
            var noTeeRate = events["sidecar, no tee"] / elapsed["sidecar, no tee"];
            foreach (var (name, _) in targets)
            {
                var rate = events[name] / elapsed[name];
                var perEvent = proxyCpu[name].TotalMicroseconds / Math.Max(1, events[name]);
                var redisPerEvent = name == "sidecar, Redis tee" ? $"{redisCpu.TotalMicroseconds / Math.Max(1, events[name]),12:F1} us" : "";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-26} {rate,9:F0}   {rate / baseline,8:F2}x   {rate / noTeeRate,8:F2}x   {perEvent,12:F1} us   {redisPerEvent}"));
            }

            var commands = redisAfter.Commands - redisBefore.Commands;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Redis tee: {batches} write batches for {stored} stored events = {(double)batches / Math.Max(1, stored):F4} round trips per event; {commands} Redis commands for {redisEvents} events in the measured rounds = {(double)commands / Math.Max(1, redisEvents):F3} commands per event"));
            Console.WriteLine("resume of a live 2,000-event stream, time to first byte (ms), 200 sequential resumes");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"in-memory store  p50 {ChildProcess.Percentile(resumeMemory, 0.5),6:F2}  p99 {ChildProcess.Percentile(resumeMemory, 0.99),6:F2}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Redis store      p50 {ChildProcess.Percentile(resumeRedis, 0.5),6:F2}  p99 {ChildProcess.Percentile(resumeRedis, 0.99),6:F2}"));
            return 0;
        }
        finally
        {
            redis.Kill();
            await redis.WaitForExitAsync();
        }
    }

    private static async Task<(double Seconds, long Events)> RunRoundAsync(HttpClient http, int port, int concurrency, string tag)
    {
        var started = Stopwatch.GetTimestamp();
        var counts = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(i => StreamAsync(http, port, $"{tag}-{port}-{i}", "deltas:196")));
        return (Stopwatch.GetElapsedTime(started).TotalSeconds, counts.Sum());
    }

    private static async Task<long> StreamAsync(HttpClient http, int port, string session, string scenario)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/api/v/c010/{session}")
        {
            Content = new StringContent($$"""{"messages":[{"id":"u","role":"user","parts":[{"type":"text","text":"/scenario {{scenario}}"}]}]}""", Encoding.UTF8, "application/json"),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[32 * 1024];
        long events = 0;
        var previous = (byte)0;
        int read;
        while ((read = await body.ReadAsync(buffer)) > 0)
        {
            for (var i = 0; i < read; i++)
            {
                if (buffer[i] == (byte)'\n' && previous == (byte)'\n')
                {
                    events++;
                }

                previous = buffer[i];
            }
        }

        return events;
    }

    /// <summary>A live 2,000-event stream (held at its end by the emulator), resumed again and again, one resume at a time.</summary>
    private static async Task<List<double>> ResumeFirstByteAsync(HttpClient http, int port, int emulatorPort, int resumes)
    {
        var session = $"resume-{port}";
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/api/v/c010/{session}")
        {
            Content = new StringContent("""{"messages":[{"id":"u","role":"user","parts":[{"type":"text","text":"/scenario deltas:1995 gate:2000"}]}]}""", Encoding.UTF8, "application/json"),
        };
        using var live = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var messageId = live.Headers.GetValues("x-message-id").Single();
        await using var liveBody = await live.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        long seen = 0;
        var previous = (byte)0;
        while (seen < 2000)
        {
            var read = await liveBody.ReadAsync(buffer);
            for (var i = 0; i < read; i++)
            {
                seen += buffer[i] == (byte)'\n' && previous == (byte)'\n' ? 1 : 0;
                previous = buffer[i];
            }
        }

        var samples = new List<double>();
        for (var i = -20; i < resumes; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var resume = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/api/v/c010/{session}"), HttpCompletionOption.ResponseHeadersRead);
            await using var body = await resume.Content.ReadAsStreamAsync();
            _ = await body.ReadAsync(buffer.AsMemory(0, 1));
            if (i >= 0)
            {
                samples.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }

            // Read the whole replay, as a client does, so that resumes do not overlap.
            long replayed = 0;
            previous = 0;
            while (replayed < 2000)
            {
                var read = await body.ReadAsync(buffer);
                for (var b = 0; b < read; b++)
                {
                    replayed += buffer[b] == (byte)'\n' && previous == (byte)'\n' ? 1 : 0;
                    previous = buffer[b];
                }
            }
        }

        using var release = await http.PostAsync($"http://127.0.0.1:{emulatorPort}/__emulator/release/{messageId}", null);
        samples.Sort();
        return samples;
    }

    private static async Task<(long Commands, long Unused)> RedisStatsAsync(int port)
    {
        using var cli = Process.Start(new ProcessStartInfo("redis-cli", ["-p", port.ToString(CultureInfo.InvariantCulture), "info", "stats"]) { RedirectStandardOutput = true })!;
        var text = await cli.StandardOutput.ReadToEndAsync();
        await cli.WaitForExitAsync();
        var match = CommandsLine().Match(text);
        return (long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), 0);
    }

    private static (long Batches, long Events) WriterTotals(ChildProcess sidecar)
    {
        foreach (var line in sidecar.Output)
        {
            var match = TotalsLine().Match(line);
            if (match.Success)
            {
                return (long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture));
            }
        }

        return (-1, -1);
    }

    private static async Task WaitForPortAsync(int port)
    {
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        throw new TimeoutException("redis-server did not start");
    }


    [GeneratedRegex(@"total_commands_processed:(\d+)")]
    private static partial Regex CommandsLine();

    [GeneratedRegex(@"(\d+) write batches for (\d+) events")]
    private static partial Regex TotalsLine();
}
