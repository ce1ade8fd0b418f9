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
