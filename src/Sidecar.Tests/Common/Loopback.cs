using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Sidecar.Tests.Common;

/// <summary>Ports on 127.0.0.1 for the servers the tests start themselves, and the repository's root.</summary>
internal static class Loopback
{
    /// <summary>A port nothing listens on now (the kernel's pick for port 0), below <paramref name="below"/>.</summary>
    public static int FreePort(int below = 65536)
    {
        while (true)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            if (port < below)
            {
                return port;
            }
        }
    }

    /// <summary>
    /// A port for a server a test starts as a process of its own, and may kill and start again on
    /// the same port: below the kernel's ephemeral range, so that no server started on port 0 (any
    /// other test's) is given it meanwhile, and free when picked. Where that range leaves no room
    /// below it, the kernel's pick, as <see cref="FreePort"/>. With <paramref name="alsoAbove"/>,
    /// the port that far above it is free too, and below that range unless it leaves no room (a
    /// Redis Cluster node's bus listens on its port + 10,000).
    /// </summary>
    public static int ServerPort(int alsoAbove = 0)
    {
        const int Lowest = 10_000;
        var highest = EphemeralRangeStart() - alsoAbove;
        for (var attempt = 0; highest - Lowest >= 1_000 && attempt < 100; attempt++)
        {
            var port = Random.Shared.Next(Lowest, highest);
            if (IsFree(port) && (alsoAbove == 0 || IsFree(port + alsoAbove)))
            {
                return port;
            }
        }

        while (true)
        {
            var port = FreePort(below: 65536 - alsoAbove);
            if (alsoAbove == 0 || IsFree(port + alsoAbove))
            {
                return port;
            }
        }
    }

    /// <summary>Whether a server could listen on <paramref name="port"/> now.</summary>
    private static bool IsFree(int port)
    {
        try
        {
            using var probe = new TcpListener(IPAddress.Loopback, port);
            probe.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The first port of the kernel's ephemeral range (Linux's default where it cannot be read).</summary>
    private static int EphemeralRangeStart()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32768;
        }
    }

    /// <summary>
    /// A port on 127.0.0.1 that refuses connections for as long as the returned socket is held:
    /// bound and never listening, so that no server started meanwhile (another test's port 0) is
    /// given it, as one could be a port that <see cref="FreePort"/> has let go.
    /// </summary>
    public static Socket RefusingPort(out int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        return socket;
    }

    /// <summary>Returns once something accepts connections on <paramref name="port"/>, or throws after 10 s.</summary>
    public static void WaitForListener(int port, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                Thread.Yield();
            }
        }

        throw new InvalidOperationException($"{what} did not start listening on port {port}");
    }

    /// <summary>The repository's root: the folder holding Sidecar.sln, above the test binaries.</summary>
    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Sidecar.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("the tests run from inside the repository");
    }
}
