using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Sidecar.Tests.Common;

/// <summary>
/// The real sidecar as a separate process (the built <c>Sidecar.dll</c>), for what only a
/// process can show: a replica killed with SIGKILL. Ready when it logs that it listens.
/// </summary>
internal sealed partial class SidecarProcess : IDisposable
{
    private readonly Process _process;

    private SidecarProcess(Process process, Uri publicAddress)
    {
        _process = process;
        PublicAddress = publicAddress;
    }

    public Uri PublicAddress { get; }

    public static async Task<SidecarProcess> StartAsync(Uri upstream, IDictionary<string, string?> settings)
    {
#if DEBUG
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        var dll = Path.Combine(Loopback.RepositoryRoot(), "src", "Sidecar", "bin", configuration, "net10.0", "Sidecar.dll");
        Assert.True(File.Exists(dll), $"build the solution first: {dll} is missing");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("--contentRoot");
        info.ArgumentList.Add(Path.GetDirectoryName(dll)!);
        var all = new Dictionary<string, string?>(settings)
        {
            ["Sidecar:UpstreamUrl"] = upstream.ToString(),
            ["Sidecar:Listen:Address"] = "127.0.0.1",
            ["Sidecar:Listen:PublicPort"] = "0",
            ["Sidecar:Listen:ManagementPort"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
            ["Logging:Console:FormatterName"] = "simple",
        };
        foreach (var (key, value) in all)
        {
            info.ArgumentList.Add($"--{key}={value}");
        }

        var process = Process.Start(info)!;
        var listening = new List<Uri>();
        var ready = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("the sidecar process exited"));
                return;
            }

            var match = ListeningLine().Match(e.Data);
            if (match.Success)
            {
                lock (listening)
                {
                    listening.Add(new Uri(match.Groups[1].Value));
                }
            }
            else if (e.Data.Contains("Application started", StringComparison.Ordinal))
            {
                // Kestrel binds (and logs) the public listener first.
                lock (listening)
                {
                    ready.TrySetResult(listening[0]);
                }
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            return new SidecarProcess(process, await ready.Task.DefaultTimeout());
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    /// <summary>Asks the process to stop, as Kubernetes does (SIGTERM).</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        await _process.WaitForExitAsync().DefaultTimeout();
        return _process.ExitCode;
    }

    /// <summary>Kills the process at once (SIGKILL): no shutdown, no drain, nothing written on the way out.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().DefaultTimeout();
    }

    public HttpClient CreateClient() => new(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = PublicAddress, Timeout = Timeout.InfiniteTimeSpan };

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningLine();
}
