using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Sidecar.Bench;

/// <summary>
/// The sidecar side by side with what a user would otherwise run, in one run on this machine:
/// direct to the emulator, plain YARP (bench/PlainYarp), nginx (when installed), and the sidecar
/// with the in-memory store and with the Redis tee. Per target and concurrency: the delay of each
/// event from the emulator writing it to the client reading it (the emulator stamps each text
/// delta with the machine's monotonic clock), events per second unpaced, the target's CPU per
/// event, and its peak memory.
/// </summary>
internal static class PeersBench
{
    // PEERS_EVENTS=N: streams of N events instead of 200, to tell a target's cost per stream from its cost per event.
    private static readonly int Events = int.TryParse(Environment.GetEnvironmentVariable("PEERS_EVENTS"), CultureInfo.InvariantCulture, out var events) && events >= 8 ? events : 200;

    /// <summary>The emulator's scenario for every run: about <see cref="Events"/> events, all but four of them stamped text deltas of 100 bytes, paced or not.</summary>
    private static string Scenario(int paceMs) => string.Create(CultureInfo.InvariantCulture, $"deltas:{Events - 4} delta-bytes:100 pace:{paceMs} stamp");

    private static readonly string[] NginxPaths = ["/usr/sbin/nginx", "/usr/bin/nginx"];

    public static async Task<int> RunAsync(string root, string configuration, int[] concurrencies, int paceMs, int idleStreams = 0, (string Target, double Seconds)? load = null)
    {
        var emulatorDll = Path.Combine(root, "samples/ChatUpstream/bin", configuration, "net10.0/ChatUpstream.dll");
        var sidecarDll = Path.Combine(root, "src/Sidecar/bin", configuration, "net10.0/Sidecar.dll");
        var yarpDll = Path.Combine(root, "bench/PlainYarp/bin", configuration, "net10.0/PlainYarp.dll");
        var work = Directory.CreateTempSubdirectory("peers-bench");
        // PEERS_PIN=1: each proxy under test on a core of its own (the last), everything else (this
        // load client, the emulator, Redis) on the others, as when the proxy does not share its
        // cores with the load, the upstream and Redis. The harness confines itself before any child
        // starts (the emulator and Redis inherit that); each proxy starts under taskset on its core,
        // so that its runtime sizes its thread pool and its collector for the one core it has
        // (pinning a running .NET process leaves both sized for all).
        var pin = Environment.GetEnvironmentVariable("PEERS_PIN") == "1";
        var proxyCore = Environment.ProcessorCount - 1;
        var proxyCores = pin ? proxyCore.ToString(CultureInfo.InvariantCulture) : null;
        // As the kernel lists them in /proc/<pid>/status.
        var otherCores = proxyCore == 1 ? "0" : $"0-{proxyCore - 1}";
        if (pin)
        {
            if (proxyCore < 1)
            {
                Console.Error.WriteLine("PEERS_PIN: needs at least two cores");
                return 2;
            }

            await PinAsync(Environment.ProcessId, otherCores);
        }

        var redisPort = ChildProcess.FreePort();
        using var redis = ChildProcess.StartRedis(redisPort);
        // PEERS_REDIS_ON_PROXY_CORE=1 (with PEERS_PIN): Redis on the proxies' core instead of the
        // load's, so that the Redis tee pays for its store on its own core and the load's core
        // does the same work for every target.
        var redisOnProxyCore = pin && Environment.GetEnvironmentVariable("PEERS_REDIS_ON_PROXY_CORE") == "1";
        if (redisOnProxyCore)
        {
            await PinAsync(redis.Id, proxyCores!);
        }

        Process? nginx = null;
        Process? baselineRedis = null;
        try
        {
            var emulatorPort = ChildProcess.FreePort();
            using var emulator = await ChildProcess.StartAsync(emulatorDll, ["--urls", $"http://127.0.0.1:{emulatorPort}", "--Emulator:DefaultPaceMs=0", "--Emulator:ResumableStreams=false"], emulatorPort, "/");
            var yarpPort = ChildProcess.FreePort();
            using var yarp = await ChildProcess.StartAsync(yarpDll, ["--urls", $"http://127.0.0.1:{yarpPort}", $"--Upstream=http://127.0.0.1:{emulatorPort}"], yarpPort, "/__ready", cores: proxyCores);
            var (memory, memoryPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, [], cores: proxyCores);
            using var memorySidecar = memory;
            // PEERS_STORE_RETENTION=<time span>: how long the Redis tees keep an ended stream
            // (default: the sidecar's, 24 h). A load writes tens of MB/s to Redis; kept for a day,
            // every byte lands on memory Redis has not used yet, and where a first touch of memory
            // is dear (a virtual machine's) it costs several times the write (see
            // docs/benchmarks.md, "Ninth round"). A retention of seconds holds Redis at a steady
            // size, as a long-running deployment is. The baseline build gets it too, before
            // PEERS_BASELINE_ARGS (a retention there wins).
            string[] retention = Environment.GetEnvironmentVariable("PEERS_STORE_RETENTION") is { Length: > 0 } kept ? [$"--Sidecar:Store:Retention={kept}"] : [];
            var (teed, teedPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, [$"--Sidecar:Store:Redis=127.0.0.1:{redisPort}", .. retention], cores: proxyCores);
            using var redisSidecar = teed;

            var targets = new List<Target>
            {
                new("direct", emulatorPort, null),
                new("plain YARP", yarpPort, () => [yarp.Pid]),
                new("sidecar, in-memory store", memoryPort, () => [memory.Pid], memory.ManagementPort),
                new("sidecar, Redis tee", teedPort, () => [teed.Pid], teed.ManagementPort, redis),
            };
            // Another build of the sidecar (its Sidecar.dll) beside this one, for before/after figures in one run.
            ChildProcess? baseline = null;
            if (Environment.GetEnvironmentVariable("PEERS_BASELINE") is { Length: > 0 } baselineDll)
            {
                // PEERS_BASELINE_ENV="NAME=value;...": environment for that process only (e.g. a runtime setting).
                var environment = (Environment.GetEnvironmentVariable("PEERS_BASELINE_ENV") ?? string.Empty)
                    .Split(';', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : string.Empty);
                // PEERS_BASELINE_STORE=memory: that build with the in-memory store instead of the Redis tee.
                var inMemory = Environment.GetEnvironmentVariable("PEERS_BASELINE_STORE") == "memory";
                // PEERS_BASELINE_ARGS="--Name=value ...": more settings for that process.
                var extraArgs = ChildProcess.ArgumentsFrom("PEERS_BASELINE_ARGS");
                // PEERS_BASELINE_REDIS_NICE=N: that build with a redis-server of its own, run at
                // that niceness: Redis then gets a small share of the cores while the proxy's
                // threads want them (it still runs on the same cores; with PEERS_PIN, on the load's).
                var baselineRedisPort = redisPort;
                if (!inMemory && Environment.GetEnvironmentVariable("PEERS_BASELINE_REDIS_NICE") is { Length: > 0 } niceness)
                {
                    // Only upwards: a negative niceness needs privileges, and nice would run Redis at 0 with a warning.
                    var level = int.Parse(niceness, CultureInfo.InvariantCulture);
                    if (level is < 0 or > 19)
                    {
                        Console.Error.WriteLine("PEERS_BASELINE_REDIS_NICE: a niceness from 0 to 19");
                        return 2;
                    }

                    baselineRedisPort = ChildProcess.FreePort();
                    baselineRedis = ChildProcess.StartRedis(baselineRedisPort, level);
                    if (redisOnProxyCore)
                    {
                        await PinAsync(baselineRedis.Id, proxyCores!);
                    }
                }

                (baseline, var baselinePort) = await ChildProcess.StartSidecarAsync(baselineDll, emulatorPort, inMemory ? extraArgs : [$"--Sidecar:Store:Redis=127.0.0.1:{baselineRedisPort}", "--Sidecar:Store:KeyPrefix=baseline", .. retention, .. extraArgs], environment, cores: proxyCores);
                targets.Add(new(inMemory ? "baseline build, in-memory store" : "baseline build, Redis tee", baselinePort, () => [baseline.Pid], baseline.ManagementPort, inMemory ? null : baselineRedis ?? redis));
            }

            using var baselineSidecar = baseline;
            var nginxPort = ChildProcess.FreePort();
            nginx = await StartNginxAsync(work.FullName, nginxPort, emulatorPort, proxyCores);
            if (nginx is not null)
            {
                var master = nginx.Id;
                targets.Insert(2, new("nginx", nginxPort, () => [master, .. Children(master)]));
            }
            else
            {
                Console.WriteLine("nginx is not installed: its rows are missing (apt-get install nginx-light)");
            }

            if (pin)
            {
                // Checked, not assumed: every thread of every proxy on its core, every thread of
                // this harness off it.
                foreach (var (pid, cores) in targets.SelectMany(t => (t.Pids?.Invoke() ?? []).Select(p => (p, proxyCores!)))
                    .Append((Environment.ProcessId, otherCores)))
                {
                    if (ThreadsOffCores(pid, cores) is { Length: > 0 } stray)
                    {
                        Console.Error.WriteLine($"PEERS_PIN: threads of {pid} not on cores {cores}: {stray}");
                        return 2;
                    }
                }

                Console.WriteLine(redisOnProxyCore
                    ? $"pinned: every proxy and Redis on core {proxyCore}; the load client and the emulator on cores {otherCores}"
                    : $"pinned: every proxy on core {proxyCore}; the load client, the emulator and Redis on cores {otherCores}");
            }

            using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = int.MaxValue, PooledConnectionLifetime = TimeSpan.FromMinutes(10) }) { Timeout = TimeSpan.FromMinutes(5) };
            // Warm-up at the run's size, paced and unpaced, so that the .NET targets are measured
            // after the JIT has tiered their hot paths up (a short warm-up left every .NET target
            // compiling through the first measured rounds).
            // PEERS_WARM_SECONDS=N: warm each target for at least N seconds instead (a proxy alone on
            // one core, PEERS_PIN, went on compiling for about 40 s of load).
            var warm = Math.Min(200, concurrencies.DefaultIfEmpty(10).Max());
            var warmFor = TimeSpan.FromSeconds(double.Parse(Environment.GetEnvironmentVariable("PEERS_WARM_SECONDS") ?? "0", CultureInfo.InvariantCulture));
            // A load run warms only the target it loads.
            var loaded = load is { } selected ? targets.Where(t => t.Name.Contains(selected.Target, StringComparison.OrdinalIgnoreCase)).ToList() : null;
            if (loaded is { Count: not 1 })
            {
                Console.Error.WriteLine($"load: '{load!.Value.Target}' matches {loaded.Count} targets; one of: {string.Join("; ", targets.Select(t => t.Name))}");
                return 2;
            }

            foreach (var target in loaded ?? targets)
            {
                var warming = Stopwatch.StartNew();
                do
                {
                    await RunStreamsAsync(http, target.Port, warm, Scenario(0), "warm");
                    await RunStreamsAsync(http, target.Port, warm, Scenario(paceMs), "warm-paced");
                }
                while (warming.Elapsed < warmFor);
            }

            if (idleStreams > 0)
            {
                await IdleMemoryAsync(targets, idleStreams, emulatorPort, emulator.Pid);
                return 0;
            }

            if (load is { } only)
            {
                await LoadAsync(http, loaded![0], concurrencies.DefaultIfEmpty(200).Max(), only.Seconds, paceMs);
                return 0;
            }

            Console.WriteLine($"{Events} events of ~100 bytes per stream; paced runs {paceMs} ms apart; targets in rotating order; machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}");
            Console.WriteLine("| streams | target | delay p50 (ms) | delay p99 (ms) | p99 added vs direct | events/s unpaced | vs direct | vs plain YARP | CPU per event (µs) | peak memory (MiB) | store batches per event | Redis's own CPU per event, paced / unpaced (µs) | p99 added from the 11th delta of each stream (ms) |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
            var plot = new List<(int Concurrency, string Target, double P99Added, double CpuPerEvent, double VsYarp)>();
            foreach (var concurrency in concurrencies)
            {
                var results = new Dictionary<string, Result>();
                for (var t = 0; t < targets.Count; t++)
                {
                    var target = targets[(t + concurrency) % targets.Count];
                    var cpuBefore = Cpu(target);
                    // A Redis serves only the Redis-backed targets, one target at a time.
                    var redisBefore = RedisCpu(target);
                    var batchesBefore = await StoreBatchesAsync(http, target);
                    var paced = await RunStreamsAsync(http, target.Port, concurrency, Scenario(paceMs), $"p{concurrency}");
                    var cpu = Cpu(target) - cpuBefore;
                    var batches = await StoreBatchesAsync(http, target) - batchesBefore;
                    var redisPaced = RedisCpu(target) - redisBefore;
                    var started = Stopwatch.GetTimestamp();
                    var unpaced = await RunStreamsAsync(http, target.Port, concurrency, Scenario(0), $"u{concurrency}");
                    var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                    var redisUnpaced = RedisCpu(target) - redisBefore - redisPaced;
                    results[target.Name] = new Result(paced.Delays, paced.Steady, paced.Errors + unpaced.Errors, unpaced.Events / seconds, paced.Events == 0 ? 0 : cpu.TotalMicroseconds / paced.Events, paced.Events == 0 ? 0 : batches / paced.Events,
                        paced.Events == 0 ? 0 : redisPaced.TotalMicroseconds / paced.Events, unpaced.Events == 0 ? 0 : redisUnpaced.TotalMicroseconds / unpaced.Events);
                }

                var direct = results["direct"];
                var plain = results["plain YARP"];
                foreach (var target in targets)
                {
                    var r = results[target.Name];
                    r.Delays.Sort();
                    direct.Delays.Sort();
                    r.Steady.Sort();
                    direct.Steady.Sort();
                    var errors = r.Errors > 0 ? $" ({r.Errors} errors)" : string.Empty;
                    plot.Add((concurrency, target.Name, ChildProcess.Percentile(r.Delays, 0.99) - ChildProcess.Percentile(direct.Delays, 0.99), target.Pids is null ? 0 : r.CpuPerEvent, r.Rate / plain.Rate));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {concurrency} | {target.Name}{errors} | {ChildProcess.Percentile(r.Delays, 0.5):F2} | {ChildProcess.Percentile(r.Delays, 0.99):F2} | {ChildProcess.Percentile(r.Delays, 0.99) - ChildProcess.Percentile(direct.Delays, 0.99):F2} | {r.Rate:F0} | {r.Rate / direct.Rate:F2}x | {r.Rate / plain.Rate:F2}x | {(target.Pids is null ? "-" : r.CpuPerEvent.ToString("F1", CultureInfo.InvariantCulture))} | {(target.Pids is null ? "-" : (PeakMemory(target) / 1024.0 / 1024).ToString("F0", CultureInfo.InvariantCulture))} | {(target.ManagementPort == 0 ? "-" : r.BatchesPerEvent.ToString("F3", CultureInfo.InvariantCulture))} | {(target.Redis is not null ? string.Create(CultureInfo.InvariantCulture, $"{r.RedisPerEvent:F1} / {r.RedisPerUnpacedEvent:F1}") : "-")} | {ChildProcess.Percentile(r.Steady, 0.99) - ChildProcess.Percentile(direct.Steady, 0.99):F2} |"));
                }
            }

            if (Environment.GetEnvironmentVariable("PEERS_PLOT") is { Length: > 0 } plotPath)
            {
                await File.WriteAllTextAsync(plotPath, Svg(plot, targets.Select(t => t.Name).ToList()));
                Console.WriteLine($"plot written to {plotPath}");
            }

            return 0;
        }
        finally
        {
            if (nginx is { HasExited: false })
            {
                nginx.Kill(entireProcessTree: true);
                await nginx.WaitForExitAsync();
            }

            foreach (var server in new[] { redis, baselineRedis }.OfType<Process>())
            {
                try
                {
                    server.Kill();
                    await server.WaitForExitAsync();
                }
                catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                    // Already gone: nothing to stop.
                }
            }

            baselineRedis?.Dispose();

            work.Delete(recursive: true);
        }
    }

    /// <summary>The CPU time so far of the redis-server the target writes to (zero for a target without one).</summary>
    private static TimeSpan RedisCpu(Target target) => target.Redis is null ? TimeSpan.Zero : ChildProcess.CpuTimeOf(target.Redis);

    /// <param name="Redis">The redis-server the target writes to, for its CPU (null: none).</param>
    private sealed record Target(string Name, int Port, Func<int[]>? Pids, int ManagementPort = 0, Process? Redis = null);


    /// <summary>Three grouped bar charts (p99 added delay, CPU per event, events/s vs plain YARP), one group per concurrency.</summary>
    private static string Svg(List<(int Concurrency, string Target, double P99Added, double CpuPerEvent, double VsYarp)> rows, List<string> targets)
    {
        string[] colors = ["#888888", "#4e79a7", "#59a14f", "#f28e2b", "#e15759"];
        var groups = rows.Select(r => r.Concurrency).Distinct().ToList();
        (string Title, Func<(int Concurrency, string Target, double P99Added, double CpuPerEvent, double VsYarp), double> Value, string Unit)[] charts =
        [
            ("p99 added delay per event vs direct (paced)", r => r.P99Added, "ms"),
            ("CPU per event (paced; direct has no proxy)", r => r.CpuPerEvent, "µs"),
            ("events/s unpaced, relative to plain YARP", r => r.VsYarp, "x"),
        ];
        const int width = 900;
        const int chartHeight = 220;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{(charts.Length * (chartHeight + 40)) + 40}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        for (var t = 0; t < targets.Count; t++)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{20 + (t * 170)}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{colors[t % colors.Length]}\"/><text x=\"{36 + (t * 170)}\" y=\"19\">{targets[t]}</text>\n");
        }

        for (var c = 0; c < charts.Length; c++)
        {
            var top = 40 + (c * (chartHeight + 40));
            var max = Math.Max(1e-9, rows.Max(charts[c].Value));
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"20\" y=\"{top + 14}\" font-weight=\"bold\">{charts[c].Title} (max {max:F1} {charts[c].Unit})</text>\n");
            var groupWidth = (width - 60) / Math.Max(1, groups.Count);
            var barWidth = (groupWidth - 20) / Math.Max(1, targets.Count);
            for (var g = 0; g < groups.Count; g++)
            {
                var x0 = 40 + (g * groupWidth);
                svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + ((groupWidth - 20) / 2) - 30}\" y=\"{top + chartHeight + 16}\">{groups[g]} streams</text>\n");
                for (var t = 0; t < targets.Count; t++)
                {
                    var row = rows.FirstOrDefault(r => r.Concurrency == groups[g] && r.Target == targets[t]);
                    var value = Math.Max(0, charts[c].Value(row));
                    var height = (chartHeight - 30) * value / max;
                    var x = x0 + (t * barWidth);
                    var y = top + chartHeight - height;
                    svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x}\" y=\"{y:F1}\" width=\"{barWidth - 4}\" height=\"{height:F1}\" fill=\"{colors[t % colors.Length]}\"/><text x=\"{x}\" y=\"{y - 3:F1}\" font-size=\"9\">{value:F1}</text>\n");
                }
            }
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>
    /// Memory per open, mostly idle stream: N streams held open by the emulator after their first
    /// event, through each target in turn; the target's resident memory with them open minus before,
    /// divided by N. Then the emulator releases them and they end.
    /// </summary>
    /// <remarks>
    /// Each target gets a client of its own, closed after it, and the next target waits until the
    /// emulator has closed the connections the last proxy pooled to it (their idle timeout). With
    /// one client kept for every target, this harness held the earlier targets' pooled connections
    /// (5,000 each) and at 5,000 streams through the fourth target reached a per-process limit of
    /// 20,000 open files; the emulator, holding every proxy's pooled connections, would be next.
    /// </remarks>
    private static async Task IdleMemoryAsync(List<Target> targets, int streams, int emulatorPort, int emulatorPid)
    {
        Console.WriteLine($"{streams} open streams held after their first event (heartbeats only)");
        Console.WriteLine("| target | resident before (MiB) | with the streams open (MiB) | per stream (KiB) |");
        Console.WriteLine("|---|---|---|---|");
        var emulatorFiles = OpenFiles(emulatorPid);
        foreach (var target in targets.Where(t => t.Pids is not null))
        {
            await ConnectionsClosedAsync(emulatorPid, emulatorFiles, TimeSpan.FromMinutes(3));
            using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = int.MaxValue }) { Timeout = TimeSpan.FromMinutes(5) };
            GC.Collect();
            var before = Resident(target);
            var open = new List<(HttpResponseMessage Response, Stream Body, string MessageId)>();
            using var opening = new SemaphoreSlim(200);
            var tasks = Enumerable.Range(0, streams).Select(async i =>
            {
                await opening.WaitAsync();
                try
                {
                    var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{target.Port}/api/v/c010/idle{target.Port}x{i}")
                    {
                        Content = new StringContent("""{"messages":[{"id":"u","role":"user","parts":[{"type":"text","text":"/scenario gate:1 deltas:1"}]}]}""", Encoding.UTF8, "application/json"),
                    };
                    var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    var body = await response.Content.ReadAsStreamAsync();
                    var first = new byte[4096];
                    _ = await body.ReadAsync(first);
                    lock (open)
                    {
                        open.Add((response, body, response.Headers.TryGetValues("x-message-id", out var ids) ? ids.First() : string.Empty));
                    }
                }
                finally
                {
                    opening.Release();
                }
            });
            await Task.WhenAll(tasks);
            var with = Resident(target);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {target.Name} | {before / 1048576.0:F0} | {with / 1048576.0:F0} | {(with - before) / 1024.0 / streams:F1} |"));

            foreach (var (response, body, messageId) in open)
            {
                using var release = await http.PostAsync(new Uri($"http://127.0.0.1:{emulatorPort}/__emulator/release/{messageId}"), null);
                await body.DisposeAsync();
                response.Dispose();
            }
        }
    }

    /// <summary>How many files a process has open, or -1 when that cannot be read.</summary>
    private static int OpenFiles(int pid)
    {
        try
        {
            return Directory.GetFiles($"/proc/{pid}/fd").Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>
    /// Waits, at most <paramref name="limit"/>, until a process has no more than a few hundred files
    /// open beyond <paramref name="baseline"/> (nginx keeps up to 256 connections to the emulator
    /// alive); says so when it gives up.
    /// </summary>
    private static async Task ConnectionsClosedAsync(int pid, int baseline, TimeSpan limit)
    {
        var waited = Stopwatch.StartNew();
        if (baseline < 0)
        {
            Console.Error.WriteLine("(the emulator's open files cannot be counted: not waiting for its connections to close)");
            return;
        }

        int open;
        while ((open = OpenFiles(pid)) > baseline + 300)
        {
            if (open < 0 || waited.Elapsed > limit)
            {
                Console.Error.WriteLine($"(the emulator has {open} files open, {baseline} before the first target; going on)");
                return;
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>
    /// One target under steady load for a while (rounds of N streams, back to back), for a profiler
    /// attached to the printed process id: events/s and CPU per event over the whole window.
    /// </summary>
    private static async Task LoadAsync(HttpClient http, Target target, int concurrency, double seconds, int paceMs)
    {
        Console.WriteLine($"load on {target.Name} (pid {string.Join(",", target.Pids?.Invoke() ?? [])}, management port {target.ManagementPort}): rounds of {concurrency} streams, pace {paceMs} ms, for {seconds} s");
        string[] gcMetrics = ["dotnet_gc_collections_total", "dotnet_gc_pause_time_seconds_total", "dotnet_gc_heap_total_allocated_bytes_total"];
        var gcBefore = new double[gcMetrics.Length];
        for (var i = 0; target.ManagementPort != 0 && i < gcMetrics.Length; i++)
        {
            gcBefore[i] = await ChildProcess.MetricAsync(http, target.ManagementPort, gcMetrics[i]);
        }

        var cpuBefore = Cpu(target);
        var redisBefore = RedisCpu(target);
        var redisResidentBefore = target.Redis is null ? 0 : ResidentOf(target.Redis.Id);
        var started = Stopwatch.GetTimestamp();

        // Redis's share of the load (Redis tees only): its CPU per event, and how it grew.
        void ReportRedis(long counted)
        {
            if (target.Redis is not null)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Redis's own CPU per event: {(RedisCpu(target) - redisBefore).TotalMicroseconds / Math.Max(1, counted):F2} µs; its resident memory {redisResidentBefore / 1048576.0:F0} MiB before, {ResidentOf(target.Redis.Id) / 1048576.0:F0} MiB after"));
            }
        }

        // The sidecar's collector over the window (its management port serves the runtime's metrics).
        async Task ReportGcAsync(long counted)
        {
            for (var i = 0; target.ManagementPort != 0 && i < gcMetrics.Length; i++)
            {
                var after = await ChildProcess.MetricAsync(http, target.ManagementPort, gcMetrics[i]);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{gcMetrics[i]}: +{after - gcBefore[i]:G4} ({(after - gcBefore[i]) / Math.Max(1, counted):G4} per event)"));
            }
        }

        if (Environment.GetEnvironmentVariable("PEERS_LOAD_STEADY") == "1")
        {
            // PEERS_LOAD_STEADY=1: N streams always in flight, each client starting its next
            // stream as soon as its last one ends, instead of rounds that wait for their slowest
            // stream (where the tail of each round leaves the cores idle).
            var workers = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async w =>
            {
                long done = 0;
                var failed = 0;
                for (var k = 0; Stopwatch.GetElapsedTime(started).TotalSeconds < seconds; k++)
                {
                    var one = await StreamAsync(http, target.Port, $"s{w}x{k}-{target.Port}", Scenario(paceMs));
                    done += one.Events;
                    failed += one.Failed ? 1 : 0;
                }

                return (Events: done, Errors: failed);
            }));
            var steadyElapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var steadyEvents = workers.Sum(r => r.Events);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{concurrency} streams always in flight: {steadyEvents} events, {workers.Sum(r => r.Errors)} errors in {steadyElapsed:F1} s: {steadyEvents / steadyElapsed:F0} events/s, CPU per event {(Cpu(target) - cpuBefore).TotalMicroseconds / Math.Max(1, steadyEvents):F2} µs"));
            ReportRedis(steadyEvents);
            await ReportGcAsync(steadyEvents);
            return;
        }

        long events = 0;
        var errors = 0;
        var rounds = 0;
        var delays = new List<double>();
        var times = new RoundTimes();
        // At least two rounds: the first is left out of the delays and times.
        while (rounds < 2 || Stopwatch.GetElapsedTime(started).TotalSeconds < seconds)
        {
            rounds++;
            var round = await RunStreamsAsync(http, target.Port, concurrency, Scenario(paceMs), $"l{rounds}", rounds > 1 ? times : null);
            events += round.Events;
            errors += round.Errors;
            if (rounds > 1)
            {
                delays.AddRange(round.Delays);
            }
        }

        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var cpu = Cpu(target) - cpuBefore;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{rounds} rounds, {events} events, {errors} errors in {elapsed:F1} s: {events / elapsed:F0} events/s, CPU per event {cpu.TotalMicroseconds / Math.Max(1, events):F2} µs"));
        delays.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"delay per stamped event, rounds 2 and after: p50 {ChildProcess.Percentile(delays, 0.5):F2} ms, p99 {ChildProcess.Percentile(delays, 0.99):F2} ms, p99.9 {ChildProcess.Percentile(delays, 0.999):F2} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"rounds 2 and after, ms from a round's start: response headers p50 {RoundTimes.Percentile(times.Headers, 0.5):F2}, p99 {RoundTimes.Percentile(times.Headers, 0.99):F2}; a stream's end p50 {RoundTimes.Percentile(times.Ends, 0.5):F2}, p99 {RoundTimes.Percentile(times.Ends, 0.99):F2}; a round p50 {RoundTimes.Percentile(times.Rounds, 0.5):F2}"));
        ReportRedis(events);
        await ReportGcAsync(events);
    }

    /// <summary>When, in a round of streams, each stream had its response headers and its end, and how long each round took (ms).</summary>
    private sealed class RoundTimes
    {
        public List<double> Headers { get; } = [];

        public List<double> Ends { get; } = [];

        public List<double> Rounds { get; } = [];

        public void AddHeaders(double ms)
        {
            lock (Headers)
            {
                Headers.Add(ms);
            }
        }

        public void AddEnd(double ms)
        {
            lock (Ends)
            {
                Ends.Add(ms);
            }
        }

        public static double Percentile(List<double> list, double p)
        {
            list.Sort();
            return ChildProcess.Percentile(list, p);
        }
    }

    /// <summary>The resident set (VmRSS) of the target's processes, in bytes.</summary>
    private static long Resident(Target target) => (target.Pids?.Invoke() ?? []).Sum(ResidentOf);

    /// <summary>The resident set (VmRSS) of one process, in bytes; 0 when it is gone.</summary>
    private static long ResidentOf(int pid)
    {
        var status = $"/proc/{pid}/status";
        var line = File.Exists(status) ? File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)) : null;
        return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private sealed record Result(List<double> Delays, List<double> Steady, int Errors, double Rate, double CpuPerEvent, double BatchesPerEvent, double RedisPerEvent, double RedisPerUnpacedEvent);

    /// <summary>How many write batches a sidecar has sent to its store so far (0 for the other targets).</summary>
    private static Task<double> StoreBatchesAsync(HttpClient http, Target target) =>
        target.ManagementPort == 0 ? Task.FromResult(0.0) : ChildProcess.MetricAsync(http, target.ManagementPort, "sidecar_store_batches_total");

    /// <summary>Stamped deltas at the start of each stream left out of the "steady" delays: the streams' setup overlaps them.</summary>
    private const int StartDeltas = 10;

    private static async Task<(List<double> Delays, List<double> Steady, long Events, int Errors)> RunStreamsAsync(HttpClient http, int port, int concurrency, string scenario, string tag, RoundTimes? times = null)
    {
        var started = Stopwatch.GetTimestamp();
        var results = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(i => StreamAsync(http, port, $"{tag}-{port}-{i}", scenario, started, times)));
        times?.Rounds.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        var delays = new List<double>(results.Sum(r => r.Delays.Count));
        var steady = new List<double>(delays.Capacity);
        foreach (var r in results)
        {
            delays.AddRange(r.Delays);
            steady.AddRange(r.Delays.Skip(StartDeltas));
        }

        return (delays, steady, results.Sum(r => r.Events), results.Count(r => r.Failed));
    }

    /// <summary>One stream read to its end: the delay of every stamped delta, and how many events came.</summary>
    private static async Task<(List<double> Delays, long Events, bool Failed)> StreamAsync(HttpClient http, int port, string session, string scenario, long roundStarted = 0, RoundTimes? times = null)
    {
        var delays = new List<double>(Events);
        long events = 0;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/api/v/c010/{session}")
            {
                Content = new StringContent($$"""{"messages":[{"id":"u","role":"user","parts":[{"type":"text","text":"/scenario {{scenario}}"}]}]}""", Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            times?.AddHeaders(Stopwatch.GetElapsedTime(roundStarted).TotalMilliseconds);
            await using var body = await response.Content.ReadAsStreamAsync();
            using var reader = new StreamReader(body, Encoding.UTF8);
            string? line;
            var sawDone = false;
            while ((line = await reader.ReadLineAsync()) is not null)
            {
                if (line.Length == 0)
                {
                    events++;
                    continue;
                }

                var at = line.IndexOf("\"delta\":\"t", StringComparison.Ordinal);
                if (at >= 0)
                {
                    var start = at + 10;
                    var end = line.IndexOf(' ', start);
                    if (end > start && long.TryParse(line.AsSpan(start, end - start), NumberStyles.None, CultureInfo.InvariantCulture, out var stamp))
                    {
                        delays.Add((Stopwatch.GetTimestamp() - stamp) * 1000.0 / Stopwatch.Frequency);
                    }
                }

                sawDone |= line == "data: [DONE]";
            }

            times?.AddEnd(Stopwatch.GetElapsedTime(roundStarted).TotalMilliseconds);

            return (delays, events, !sawDone);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return (delays, events, true);
        }
    }

    /// <summary>nginx from the Debian package, configured for SSE (no buffering), one worker; null when not installed.</summary>
    private static async Task<Process?> StartNginxAsync(string work, int port, int emulatorPort, string? cores)
    {
        var binary = NginxPaths.FirstOrDefault(File.Exists);
        if (binary is null)
        {
            return null;
        }

        var conf = Path.Combine(work, "nginx.conf");
        await File.WriteAllTextAsync(conf, $$"""
            worker_processes 1;
            daemon off;
            pid {{work}}/nginx.pid;
            error_log {{work}}/error.log warn;
            events { worker_connections 20000; }
            http {
              access_log off;
              client_body_temp_path {{work}}/body;
              proxy_temp_path {{work}}/proxy;
              fastcgi_temp_path {{work}}/fastcgi;
              uwsgi_temp_path {{work}}/uwsgi;
              scgi_temp_path {{work}}/scgi;
              upstream emulator { server 127.0.0.1:{{emulatorPort}}; keepalive 256; }
              server {
                listen 127.0.0.1:{{port}};
                location / {
                  proxy_pass http://emulator;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                  proxy_buffering off;
                  proxy_cache off;
                  proxy_read_timeout 1h;
                }
              }
            }
            """);
        string[] command = cores is null ? [binary, "-p", work, "-c", conf] : ["taskset", "-c", cores, binary, "-p", work, "-c", conf];
        var process = Process.Start(new ProcessStartInfo(command[0], command[1..]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 50; i++)
        {
            try
            {
                using var response = await probe.GetAsync(new Uri($"http://127.0.0.1:{port}/"));
                if (response.IsSuccessStatusCode)
                {
                    return process;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        process.Kill();
        Console.WriteLine("nginx did not start: " + await process.StandardError.ReadToEndAsync());
        return null;
    }

    private static TimeSpan Cpu(Target target)
    {
        var total = TimeSpan.Zero;
        foreach (var pid in target.Pids?.Invoke() ?? [])
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                total += process.TotalProcessorTime;
            }
            catch (ArgumentException)
            {
            }
        }

        return total;
    }

    /// <summary>The largest resident set (VmHWM) of the target's processes, in bytes.</summary>
    private static long PeakMemory(Target target) =>
        (target.Pids?.Invoke() ?? []).Sum(pid =>
        {
            var status = $"/proc/{pid}/status";
            var line = File.Exists(status) ? File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal)) : null;
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        });

    /// <summary>Restricts every thread of a process to the given cores (taskset's list syntax); threads it starts later inherit that.</summary>
    private static async Task PinAsync(int pid, string cores)
    {
        using var taskset = Process.Start(new ProcessStartInfo("taskset", ["-a", "-p", "-c", cores, pid.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true, RedirectStandardError = true })
            ?? throw new InvalidOperationException("could not start taskset");
        await taskset.WaitForExitAsync();
        if (taskset.ExitCode != 0)
        {
            throw new InvalidOperationException($"taskset could not pin {pid} to {cores}: {await taskset.StandardError.ReadToEndAsync()}");
        }
    }

    /// <summary>The threads of a process (as "tid: cores") whose allowed cores are not exactly <paramref name="cores"/> (taskset's list syntax, as the kernel prints it).</summary>
    private static string ThreadsOffCores(int pid, string cores) =>
        string.Join(", ", Directory.EnumerateDirectories($"/proc/{pid}/task").Select(task =>
        {
            try
            {
                var allowed = File.ReadLines(Path.Combine(task, "status")).FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
                return allowed == cores ? null : $"{Path.GetFileName(task)}: {allowed}";
            }
            catch (IOException)
            {
                // The thread ended meanwhile.
                return null;
            }
        }).OfType<string>());

    private static int[] Children(int pid)
    {
        var path = $"/proc/{pid}/task/{pid}/children";
        return File.Exists(path)
            ? [.. File.ReadAllText(path).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture))]
            : [];
    }

}
