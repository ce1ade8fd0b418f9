using System.Diagnostics;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Bench;

/// <summary>
/// The harnesses in <c>bench/</c> run end to end against real processes. They measure time, so
/// they run alone, not beside other test classes competing for the same two cores.
/// </summary>
[CollectionDefinition(nameof(BenchSmokeTests), DisableParallelization = true)]
public sealed class BenchSmokeGroup;

/// <summary>The benchmark harness runs end to end (tiny N): the real processes start, stream and report.</summary>
[Collection(nameof(BenchSmokeTests))]
public class BenchSmokeTests
{
    [Fact]
    public async Task PeersHarness_TinyRun_ReportsEveryTarget()
    {
        var text = await RunHarnessAsync("peers", "2", "1");
        foreach (var target in new[] { "| 2 | direct |", "| 2 | plain YARP |", "| 2 | sidecar, in-memory store |", "| 2 | sidecar, Redis tee |" })
        {
            Assert.Contains(target, text, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("errors)", text, StringComparison.Ordinal);
    }

    /// <summary>
    /// The idle-memory run reports memory per stream for every target, the Redis tee included. A
    /// check of its output only: with 20 streams no process nears its open-files limit, so this
    /// does not test the run at 5,000 streams (measured in docs/benchmarks.md, not tested).
    /// </summary>
    [Fact]
    public async Task IdleHarness_TinyRun_ReportsEveryTarget()
    {
        var text = await RunHarnessAsync("idle", "20");
        Assert.Contains("20 open streams held after their first event", text, StringComparison.Ordinal);
        foreach (var target in new[] { "plain YARP", "sidecar, in-memory store", "sidecar, Redis tee" })
        {
            Assert.Matches($@"\| {target} \| \d+ \| \d+ \| -?\d+\.\d \|", text);
        }
    }

    /// <summary>A short load on the Redis tee reports its rate, when streams got their headers and ends within a round, and Redis's memory.</summary>
    [Fact]
    public async Task LoadHarness_TinyRun_ReportsRoundTimesAndRedis()
    {
        var text = await RunHarnessAsync("load", "Redis tee", "2", "1", "1");
        Assert.Matches(@", 0 errors in [\d.]+ s: \d+ events/s", text);
        Assert.Matches(@"rounds 2 and after, ms from a round's start: response headers p50 [\d.]+, p99 [\d.]+; a stream's end p50 [\d.]+", text);
        Assert.Matches(@"Redis's own CPU per event: [\d.]+ µs; its resident memory \d+ MiB before, \d+ MiB after", text);
    }

    /// <summary>
    /// The steady load (streams always in flight) on a Redis tee with a retention of seconds runs
    /// and reports its rate and Redis's share.
    /// </summary>
    [Fact]
    public async Task LoadHarness_SteadyTinyRun_ReportsRateAndRedis()
    {
        var text = await RunAsync(
            "Sidecar.Bench",
            new Dictionary<string, string> { ["PEERS_LOAD_STEADY"] = "1", ["PEERS_STORE_RETENTION"] = "00:00:05" },
            "load",
            "Redis tee",
            "2",
            "1",
            "1");
        Assert.Matches(@"2 streams always in flight: [1-9]\d* events, 0 errors in [\d.]+ s: \d+ events/s", text);
        Assert.Matches(@"Redis's own CPU per event: [\d.]+ µs; its resident memory \d+ MiB before, \d+ MiB after", text);
        Assert.DoesNotContain("rounds 2 and after", text, StringComparison.Ordinal);
    }

    /// <summary>
    /// The fault matrix against real processes (two sidecar replicas, redis-server, the emulator):
    /// every cell passes, and the report names each.
    /// </summary>
    [Fact]
    public async Task FaultMatrix_EveryCellPasses()
    {
        var text = await RunHarnessAsync("faults");
        Assert.Contains("6 of 6 cells passed", text, StringComparison.Ordinal);
        Assert.Equal(6, text.Split('\n').Count(l => l.StartsWith("| ", StringComparison.Ordinal) && l.EndsWith("| pass |", StringComparison.Ordinal)));
    }

    /// <summary>The Redis write-cost run (the real store against its own redis-server) applies every write and reports the script's commands.</summary>
    [Fact]
    public async Task RedisWriteCost_TinyRun_ReportsCostsPerStreamWrite()
    {
        var text = await RunAsync("Sidecar.Benchmarks", "redis-writes", "2", "1", "20");
        Assert.Contains("2 streams x 1 event(s) per batch, 20 batches", text, StringComparison.Ordinal);
        Assert.Contains("per stream write: Redis process CPU", text, StringComparison.Ordinal);
        Assert.Matches(@"xadd +1\.00 calls", text);

        // State and count are read with one call per stream write.
        Assert.Matches(@"hmget +1\.00 calls", text);
        Assert.DoesNotContain("hget ", text, StringComparison.Ordinal);
    }

    /// <summary>Runs the built harness with <paramref name="args"/>; returns its output once it exited with 0.</summary>
    private static Task<string> RunHarnessAsync(params string[] args) => RunAsync("Sidecar.Bench", args);

    /// <summary>Runs a built project of <c>bench/</c> with <paramref name="args"/>; returns its output once it exited with 0.</summary>
    private static Task<string> RunAsync(string project, params string[] args) => RunAsync(project, null, args);

    /// <summary>As <see cref="RunAsync(string, string[])"/>, with <paramref name="environment"/> added to the harness's environment.</summary>
    private static async Task<string> RunAsync(string project, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
#if DEBUG
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        var dll = Path.Combine(Loopback.RepositoryRoot(), "bench", project, "bin", configuration, "net10.0", project + ".dll");
        Assert.True(File.Exists(dll), $"build the solution first: {dll} is missing");
        var info = new ProcessStartInfo("dotnet", [dll, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        var text = await output;
        Assert.True(process.ExitCode == 0, text + await error);
        return text;
    }
}
