using System.Diagnostics;
using System.Net.Sockets;

namespace Sidecar.Bench;

/// <summary>A server started as a separate process for a measurement, stopped by pid when done.</summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;

    private ChildProcess(Process process) => _process = process;

    /// <summary>Every line the process wrote to its standard output.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Output { get; } = new();

    /// <summary>
    /// Starts <paramref name="dll"/>; with <paramref name="cores"/> (taskset's list syntax), confined
    /// to those cores from its first instruction (taskset runs it in its own process, same pid), so
    /// that its runtime sizes the thread pool and the collector for them.
    /// </summary>
    public static async Task<ChildProcess> StartAsync(string dll, IEnumerable<string> args, int readyPort, string readyPath, IDictionary<string, string>? environment = null, string? cores = null)
    {
        var info = new ProcessStartInfo(cores is null ? "dotnet" : "taskset") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (cores is not null)
        {
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(cores);
            info.ArgumentList.Add("dotnet");
        }

        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("--contentRoot");
        info.ArgumentList.Add(Path.GetDirectoryName(dll)!);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {dll}");
        var child = new ChildProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                child.Output.Enqueue(e.Data);
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{dll} exited with {process.ExitCode}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{readyPort}{readyPath}"));
                if (response.IsSuccessStatusCode)
                {
                    return child;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or SocketException)
            {
            }

            await Task.Delay(100);
        }

        child.Dispose();
        throw new TimeoutException($"{dll} did not become ready");
    }

    /// <summary>The management port of a sidecar (metrics, health), or 0.</summary>
    public int ManagementPort { get; private set; }

    /// <summary>The sum of a metric's samples on a sidecar's Prometheus scrape (those whose labels contain <paramref name="label"/>).</summary>
    public static async Task<double> MetricAsync(HttpClient http, int managementPort, string name, string? label = null)
    {
        var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{managementPort}/metrics"));
        var sum = 0.0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && (line.Length == name.Length || line[name.Length] is '{' or ' ')
                && (label is null || line.Contains(label, StringComparison.Ordinal)))
            {
                sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    /// <summary>The process's resident memory now, in bytes (Linux).</summary>
    public long ResidentBytes
    {
        get
        {
            _process.Refresh();
            return _process.WorkingSet64;
        }
    }

    /// <summary>Kills the process at once (SIGKILL), as a crash would, and waits for it to be gone.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: false);
            _process.WaitForExit(10_000);
        }
    }

    /// <summary>The process id.</summary>
    public int Pid => _process.Id;

    /// <summary>The CPU time the process has used so far (user and system).</summary>
    public TimeSpan CpuTime => CpuTimeOf(_process);

    /// <summary>The CPU time a process has used so far (user and system), e.g. a run's <c>redis-server</c>.</summary>
    public static TimeSpan CpuTimeOf(Process process)
    {
        process.Refresh();
        return process.TotalProcessorTime;
    }

    /// <summary>
    /// The sidecar (<paramref name="dll"/>) in front of the emulator, both ports free on loopback,
    /// stopping without a shutdown delay; ready when <c>/readyz</c> answers. Returns its public port.
    /// </summary>
    public static async Task<(ChildProcess Process, int Port)> StartSidecarAsync(string dll, int emulatorPort, IEnumerable<string> extra, IDictionary<string, string>? environment = null, int? port = null, int? management = null, string? cores = null)
    {
        var publicPort = port ?? FreePort();
        var managementPort = management ?? FreePort();
        string[] args =
        [
            $"--Sidecar:UpstreamUrl=http://127.0.0.1:{emulatorPort}", "--Sidecar:Listen:Address=127.0.0.1",
            $"--Sidecar:Listen:PublicPort={publicPort}", $"--Sidecar:Listen:ManagementPort={managementPort}",
            "--Sidecar:Streams:ShutdownDelay=00:00:00", .. extra,
        ];
        var child = await StartAsync(dll, args, managementPort, "/readyz", environment, cores);
        child.ManagementPort = managementPort;
        return (child, publicPort);
    }

    /// <summary>A redis-server of its own on the port, without persistence; with a niceness, run under <c>nice</c>.</summary>
    public static Process StartRedis(int port, int niceness = 0)
    {
        string[] server = ["redis-server", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        string[] command = niceness == 0 ? server : ["nice", "-n", niceness.ToString(System.Globalization.CultureInfo.InvariantCulture), .. server];
        return Process.Start(new ProcessStartInfo(command[0], command[1..]) { RedirectStandardOutput = true })!;
    }

    /// <summary>The command-line arguments an environment variable lists, space-separated ("--Name=value ..."); none when it is unset.</summary>
    public static string[] ArgumentsFrom(string variable) =>
        (Environment.GetEnvironmentVariable(variable) ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The q-quantile of sorted values (NaN when there are none).</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, Math.Max(0, (int)Math.Ceiling(q * sorted.Count) - 1))];

    public static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Stops the process as Kubernetes does (SIGTERM) and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
    }
}
