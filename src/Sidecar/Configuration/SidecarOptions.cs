using System.ComponentModel.DataAnnotations;

namespace Sidecar.Configuration;

/// <summary>The sidecar's root options (section <c>Sidecar</c>).</summary>
public sealed class SidecarOptions
{
    public const string SectionName = "Sidecar";

    /// <summary>
    /// The chat service every path goes to when the <c>ReverseProxy</c> section defines no routes
    /// (environment: <c>Sidecar__UpstreamUrl</c>).
    /// </summary>
    [Required]
    public string UpstreamUrl { get; set; } = "http://127.0.0.1:3000";

    /// <summary>How long the default route waits for the upstream's response headers (YARP's ActivityTimeout).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan UpstreamTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>The largest chat POST body passed through (the contract's limit); larger ones get a typed 413.</summary>
    [Range(1024L, 1L << 30)]
    public long MaxChatRequestBodyBytes { get; set; } = 1_000_000;

    /// <summary>Where the sidecar listens.</summary>
    public ListenOptions Listen { get; set; } = new();
}

/// <summary>The sidecar's two listeners (section <c>Sidecar:Listen</c>).</summary>
public sealed class ListenOptions
{
    /// <summary>The address both listeners bind to.</summary>
    [Required]
    public string Address { get; set; } = "0.0.0.0";

    /// <summary>The public port: the proxy, the chat route. Zero picks a free port.</summary>
    [Range(0, 65535)]
    public int PublicPort { get; set; } = 8080;

    /// <summary>The management port: health, metrics, callbacks. Zero picks a free port.</summary>
    [Range(0, 65535)]
    public int ManagementPort { get; set; } = 8081;

    /// <summary>How long a client may take to send its request headers (slow-loris clients are cut off with a 408).</summary>
    [Range(typeof(TimeSpan), "00:00:00.500", "00:05:00")]
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long an idle keep-alive connection stays open.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(130);

    /// <summary>The most connections the public listener holds at once (past it, new ones are closed); zero means no limit. The management port is not limited.</summary>
    [Range(0, int.MaxValue)]
    public int MaxConnections { get; set; }
}
