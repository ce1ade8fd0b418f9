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

    internal void Bind(KestrelServerOptions kestrel, IPAddress address, int publicPort, int managementPort)
    {
        kestrel.Listen(address, publicPort, listen => _public = listen);
        kestrel.Listen(address, managementPort, listen => _management = listen);
    }

    /// <summary>Whether the request came in on the management listener.</summary>
    internal bool IsManagement(HttpContext context) =>
        _management?.IPEndPoint is { } endPoint && context.Connection.LocalPort == endPoint.Port;
}
