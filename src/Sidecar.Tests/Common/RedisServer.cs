using System.Diagnostics;

namespace Sidecar.Tests.Common;

/// <summary>
/// The real redis-server the tests share: the one <c>scripts/test.sh</c> started
/// (<c>SIDECAR_TEST_REDIS</c>), or else one this process starts on a free loopback port and stops
/// when it exits. Tests isolate themselves with a key prefix of their own.
/// </summary>
internal static class RedisServer
{
    private static readonly Lazy<string> Shared = new(Start);

    /// <summary>A StackExchange.Redis configuration string for the server.</summary>
    public static string Configuration => Shared.Value;

    /// <summary>A key prefix no other test uses.</summary>
    public static string NewPrefix() => "t" + Guid.NewGuid().ToString("N")[..10];

    private static string Start()
    {
        if (Environment.GetEnvironmentVariable("SIDECAR_TEST_REDIS") is { Length: > 0 } configured)
        {
            return configured;
        }

        var owned = new OwnedRedis();
        owned.Start();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => owned.Dispose();
        return owned.Configuration;
    }
}

/// <summary>A redis-server of a test's own, which the test may kill and start again on the same port.</summary>
internal sealed class OwnedRedis : IDisposable
{
    private Process? _process;

    public int Port { get; } = Loopback.ServerPort();

    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>Starts the server and returns once it accepts connections.</summary>
    public void Start()
    {
        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            info.ArgumentList.Add(arg);
        }

        try
        {
            _process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("The Redis tests need redis-server: run scripts/test.sh, or install the redis-server package, or set SIDECAR_TEST_REDIS.", ex);
        }

        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        Loopback.WaitForListener(Port, "redis-server");
    }

    /// <summary>Kills the server (SIGKILL) and waits for it to be gone.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            process.WaitForExit();
        }
    }

    public void Dispose()
    {
        Kill();
        _process?.Dispose();
    }
}
