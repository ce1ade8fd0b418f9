using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Sidecar.Tests.Common;

/// <summary>
/// The real redis-server the tests use: the one <c>scripts/test.sh</c> started
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

        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            info.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("The Redis tests need redis-server: run scripts/test.sh, or install the redis-server package, or set SIDECAR_TEST_REDIS.", ex);
        }

        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        };

        // Ready when it accepts a connection.
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return $"127.0.0.1:{port}";
            }
            catch (SocketException)
            {
                Thread.Yield();
            }
        }

        throw new InvalidOperationException("redis-server did not start");
    }
}
