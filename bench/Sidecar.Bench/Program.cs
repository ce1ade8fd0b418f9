using System.Diagnostics;
using System.Globalization;
using System.Text;
using Sidecar.Bench;

// Time to first event, direct to the emulator, through plain YARP and through the sidecar (in-memory
// store, Redis tee), measured side by side: the targets take turns so that machine noise hits all alike.
//   dotnet run -c Release --project bench/Sidecar.Bench -- ttfe [requests]
//   dotnet run -c Release --project bench/Sidecar.Bench -- tee [concurrency] [rounds]
//   dotnet run -c Release --project bench/Sidecar.Bench -- ack [concurrency] [rounds]
//   dotnet run -c Release --project bench/Sidecar.Bench -- peers [concurrencies, e.g. 1,50,200,1000] [pace ms]
//   dotnet run -c Release --project bench/Sidecar.Bench -- load [target: direct|plain|nginx|in-memory|Redis tee] [streams] [seconds] [pace ms]
//   dotnet run -c Release --project bench/Sidecar.Bench -- idle [open streams, default 5000]
//   dotnet run -c Release --project bench/Sidecar.Bench -- resume [sizes, default 100,2000,20000]
//   dotnet run -c Release --project bench/Sidecar.Bench -- faults
//   dotnet run -c Release --project bench/Sidecar.Bench -- soak [clients, default 1000] [minutes, default 10] [pace ms, default 100]
#if DEBUG
const string configuration = "Debug";
#else
const string configuration = "Release";
#endif
var root = FindRoot();
if (args.Length > 0 && args[0] == "tee")
{
    return await TeeBench.RunAsync(
        root,
        configuration,
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3);
}

if (args.Length > 0 && args[0] == "soak")
{
    return await Soak.RunAsync(
        root,
        configuration,
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1000,
        TimeSpan.FromMinutes(args.Length > 2 ? double.Parse(args[2], CultureInfo.InvariantCulture) : 10),
        args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 100);
}

if (args.Length > 0 && args[0] == "faults")
{
    return await FaultMatrix.RunAsync(root, configuration);
}

if (args.Length > 0 && args[0] == "resume")
{
    return await ResumeBench.RunAsync(root, configuration, args.Length > 1 ? [.. args[1].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))] : [100, 2000, 20000]);
}

if (args.Length > 0 && args[0] == "idle")
{
    return await PeersBench.RunAsync(root, configuration, [], 0, args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5000);
}

if (args.Length > 0 && args[0] == "peers")
{
    return await PeersBench.RunAsync(
        root,
        configuration,
        args.Length > 1 ? [.. args[1].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))] : [1, 50, 200],
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 10);
}

if (args.Length > 0 && args[0] == "load")
{
    // One target under back-to-back rounds, for a profiler: load [target] [streams] [seconds] [pace ms].
    // The target is any unique part of its name: direct, plain, nginx, in-memory, Redis tee.
    var name = args.Length > 1 ? args[1] : "Redis tee";
    return await PeersBench.RunAsync(
        root,
        configuration,
        [args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 200],
        args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 0,
        load: (name, args.Length > 3 ? double.Parse(args[3], CultureInfo.InvariantCulture) : 30));
}

if (args.Length > 0 && args[0] == "ack")
{
    return await AckBench.RunAsync(
        root,
        configuration,
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 50,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 10);
}

var requests = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 400;
if (args.Length == 0 || args[0] != "ttfe")
{
    Console.Error.WriteLine("usage: Sidecar.Bench ttfe [requests] | tee [concurrency] [rounds] | ack [concurrency] [rounds] | peers [concurrencies] [pace ms] | load [target] [streams] [seconds] [pace ms] | idle [streams] | resume [sizes] | faults | soak [clients] [minutes] [pace ms]");
    return 2;
}

var emulatorDll = Path.Combine(root, "samples/ChatUpstream/bin", configuration, "net10.0/ChatUpstream.dll");
var sidecarDll = Path.Combine(root, "src/Sidecar/bin", configuration, "net10.0/Sidecar.dll");
var yarpDll = Path.Combine(root, "bench/PlainYarp/bin", configuration, "net10.0/PlainYarp.dll");
var emulatorPort = ChildProcess.FreePort();
using var emulator = await ChildProcess.StartAsync(emulatorDll, ["--urls", $"http://127.0.0.1:{emulatorPort}", "--Emulator:DefaultPaceMs=0", "--Emulator:ResumableStreams=false"], emulatorPort, "/");
var yarpPort = ChildProcess.FreePort();
using var yarp = await ChildProcess.StartAsync(yarpDll, ["--urls", $"http://127.0.0.1:{yarpPort}", $"--Upstream=http://127.0.0.1:{emulatorPort}"], yarpPort, "/__ready");
var (sidecar, publicPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, []);
using var sidecarProcess = sidecar;
var redisPort = ChildProcess.FreePort();
using var redis = ChildProcess.StartRedis(redisPort);
try
{
    var (teed, teedPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, [$"--Sidecar:Store:Redis=127.0.0.1:{redisPort}"]);
    using var teedProcess = teed;

    using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false }) { Timeout = TimeSpan.FromSeconds(30) };
    var targets = new[]
    {
        ("direct", new Uri($"http://127.0.0.1:{emulatorPort}")),
        ("plain YARP", new Uri($"http://127.0.0.1:{yarpPort}")),
        ("sidecar, in-memory store", new Uri($"http://127.0.0.1:{publicPort}")),
        ("sidecar, Redis tee", new Uri($"http://127.0.0.1:{teedPort}")),
    };
    var samples = targets.ToDictionary(t => t.Item1, _ => new List<double>());
    var body = """{"messages":[{"id":"u1","role":"user","parts":[{"type":"text","text":"hi /scenario deltas:20"}]}]}""";

    // 200 unmeasured requests per target first (the code paths compile up over the first tens).
    // The targets go in a shuffled order each time (fixed seed), so that none always follows the
    // same one (a Redis-tee sidecar's store writer may still be busy after its request).
    var shuffle = new Random(7);
    for (var i = -200; i < requests; i++)
    {
        var order = targets.ToArray();
        shuffle.Shuffle(order);
        for (var t = 0; t < order.Length; t++)
        {
            var (name, baseUri) = order[t];
            var started = Stopwatch.GetTimestamp();
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, $"/api/v/c010/bench{i}x{t}")) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            await using var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[16 * 1024];
            var first = -1.0;
            var seen = new StringBuilder();
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                if (first < 0)
                {
                    seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
                    if (seen.ToString().Contains("\n\n", StringComparison.Ordinal))
                    {
                        first = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    }
                }
            }

            if (i >= 0)
            {
                samples[name].Add(first);
            }
        }
    }

    Console.WriteLine($"time to first event, {requests} requests per target, targets in a shuffled order each time, sequential (ms)");
    Console.WriteLine("| target | p50 | p90 | p99 | p50 vs direct | p50 vs plain YARP |");
    Console.WriteLine("|---|---|---|---|---|---|");
    foreach (var values in samples.Values)
    {
        values.Sort();
    }

    foreach (var (name, values) in samples)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {P(values, 0.5):F3} | {P(values, 0.9):F3} | {P(values, 0.99):F3} | {P(values, 0.5) / P(samples["direct"], 0.5):F2}x | {P(values, 0.5) / P(samples["plain YARP"], 0.5):F2}x |"));
    }
}
finally
{
    redis.Kill();
    await redis.WaitForExitAsync();
}

return 0;

static double P(List<double> sorted, double q) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];

static string FindRoot()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sidecar.sln")))
    {
        dir = dir.Parent;
    }

    return dir?.FullName ?? throw new InvalidOperationException("run from inside the repository");
}
