using System.ComponentModel.DataAnnotations;

namespace Sidecar.Streams;

/// <summary>Limits and timings of the chat streams the sidecar pumps (section <c>Sidecar:Streams</c>).</summary>
public sealed class StreamOptions
{
    public const string SectionName = "Sidecar:Streams";

    /// <summary>How long the upstream may stay silent mid-stream before the sidecar gives up on it.</summary>
    /// <remarks>Well above a model's pauses (long reasoning, slow tools).</remarks>
    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan UpstreamIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How often a quiet client connection gets a <c>: keep-alive</c> comment; zero turns heartbeats off.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The longest a stream may run, whoever is reading it.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "7.00:00:00")]
    public TimeSpan MaxDuration { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>The most bytes one stream may carry.</summary>
    [Range(1024L, long.MaxValue)]
    public long MaxStreamBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// How far (in bytes) a live client may fall behind the upstream before the sidecar stops
    /// buffering for it in memory: the client then reads on from the store at its own pace (from
    /// the next event it needs), or, when the store does not hold the whole stream, its connection
    /// is closed. The upstream is never slowed.
    /// </summary>
    [Range(64L * 1024, long.MaxValue)]
    public long MaxClientBacklogBytes { get; set; } = 8L * 1024 * 1024;

    /// <summary>
    /// At shutdown, how long running streams may go on before they are cut off. The host's
    /// shutdown timeout is set above it.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// At shutdown, how long the sidecar keeps accepting connections while it reports not ready
    /// (so that the load balancer stops sending before the listeners close): new chat POSTs get a
    /// typed 503 meanwhile; resumes and running streams are served. Counts within the drain time.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan ShutdownDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The most bytes one SSE event may carry (artifact parts carry the whole document so far).</summary>
    [Range(1024L, int.MaxValue)]
    public long MaxEventBytes { get; set; } = 4L * 1024 * 1024;
}
