using System.Diagnostics;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Bench;

/// <summary>The benchmark harness runs end to end (tiny N): the real processes start, stream and report.</summary>
public class BenchSmokeTests
{
    [Fact]
    public async Task PeersHarness_TinyRun_ReportsEveryTarget()
    {
#if DEBUG
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        var dll = Path.Combine(Loopback.RepositoryRoot(), "bench", "Sidecar.Bench", "bin", configuration, "net10.0", "Sidecar.Bench.dll");
        Assert.True(File.Exists(dll), $"build the solution first: {dll} is missing");
        var info = new ProcessStartInfo("dotnet", [dll, "peers", "2", "1"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
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
        foreach (var target in new[] { "| 2 | direct |", "| 2 | plain YARP |", "| 2 | sidecar, in-memory store |", "| 2 | sidecar, Redis tee |" })
        {
            Assert.Contains(target, text, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("errors)", text, StringComparison.Ordinal);
    }
}
