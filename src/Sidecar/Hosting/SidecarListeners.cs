using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Sidecar.Hosting;

/// <summary>
/// The public and management listeners. Kestrel writes the bound address back into each
/// <see cref="Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions"/>, so with port 0 the real
/// ports are known once the server has started.
/// </summary>
public sealed class SidecarListeners
{
    private Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? _public;
    private Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? _management;

    /// <summary>The public (proxy) endpoint; its port is real once the server has started.</summary>
    public IPEndPoint? PublicEndPoint => _public?.IPEndPoint;

    /// <summary>The management endpoint; its port is real once the server has started.</summary>
    public IPEndPoint? ManagementEndPoint => _management?.IPEndPoint;

    private int _publicConnections;

    /// <summary>
    /// Binds both listeners. <paramref name="maxPublicConnections"/> (zero: no limit) caps the public
    /// listener only: a flood of client connections must not lock operators and probes out of the
    /// management port. A connection past the cap is closed at once and counted.
    /// </summary>
    internal void Bind(KestrelServerOptions kestrel, IPAddress address, int publicPort, int managementPort, int maxPublicConnections, Action? rejected = null)
    {
        kestrel.Listen(address, publicPort, listen =>
        {
            _public = listen;
            if (maxPublicConnections > 0)
            {
                listen.Use(next => async connection =>
                {
                    if (Interlocked.Increment(ref _publicConnections) > maxPublicConnections)
                    {
                        Interlocked.Decrement(ref _publicConnections);
                        rejected?.Invoke();
                        connection.Abort();
                        return;
                    }

                    try
                    {
                        await next(connection);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _publicConnections);
                    }
                });
            }
        });
        kestrel.Listen(address, managementPort, listen => _management = listen);
    }

    /// <summary>Whether the request came in on the management listener.</summary>
    internal bool IsManagement(HttpContext context) =>
        _management?.IPEndPoint is { } endPoint && context.Connection.LocalPort == endPoint.Port;
}
