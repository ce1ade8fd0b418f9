using System.ComponentModel.DataAnnotations;

namespace Sidecar.Streams.Store;

/// <summary>Where and how long streams are kept for resume (section <c>Sidecar:Store</c>).</summary>
public sealed class StreamStoreOptions
{
    public const string SectionName = "Sidecar:Store";

    /// <summary>Whether streams are stored at all; off, the sidecar neither tees nor serves resume (the GET goes to the upstream).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// A StackExchange.Redis configuration string (<c>host:6379,password=...</c>); empty keeps
    /// streams in this process's memory (one replica only). Its <c>channelPrefix</c> is ignored:
    /// the sidecar's channels carry <c>KeyPrefix</c>.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>The prefix of every Redis key.</summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9_.:-]{1,64}$")]
    public string KeyPrefix { get; set; } = "sidecar";

    /// <summary>How long a stream is kept after it ends.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The most bytes the in-memory store holds; finished streams are evicted oldest first.</summary>
    [Range(1024L * 1024, long.MaxValue)]
    public long InMemoryMaxBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>How long a producer's lease lasts unless renewed (renewed every third of it).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The longest any one store call may take before it counts as failed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a batch whose store call failed or timed out (Redis slow or stalled, a failover, a
    /// lost connection) is sent again, with a growing delay, before its streams lose resume. Writes are idempotent, so
    /// a late first attempt and its retry store each event once. Later batches wait behind it,
    /// within <see cref="MaxPendingBytes"/>. A replay (a resume, a client that fell behind) waits as
    /// long for a failing store before it ends with the resume error. Zero: no retry.
    /// </summary>
    /// <remarks>
    /// Lease renewals queue behind a batch being retried (and wait in the gathering wait,
    /// <see cref="WriteDelay"/>), so the window used is at most two thirds of
    /// <see cref="LeaseDuration"/> minus <see cref="OperationTimeout"/> and that wait: resumers on
    /// other replicas must not take a live stream for one whose producer died.
    /// </remarks>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan WriteRetryWindow { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long the store writer, once caught up, lets events gather before its next batch, so
    /// that a stream at a model's pace sends several events in one write instead of one write per
    /// event (a Redis store write costs Redis about as much for one event as for a few: 20 ms at
    /// 10 ms per event cut Redis's CPU per event by about a third). A new stream's registration
    /// never waits for it (its client's headers wait for the registration). At most a sixth of
    /// <see cref="LeaseDuration"/> is used, so that lease renewals stay in time. The price: a resumer following a live
    /// stream, or replaying one that has just ended, gets its last events up to this much later,
    /// and a replica's death can lose up to this much more of what its clients were sent. Zero
    /// (the default): a batch as soon as anything waits.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:01")]
    public TimeSpan WriteDelay { get; set; } = TimeSpan.Zero;

    /// <summary>The most bytes waiting to be written to the store; past it, streams lose resume instead of the process growing.</summary>
    [Range(1024L * 1024, long.MaxValue)]
    public long MaxPendingBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// The gathering wait in effect: <see cref="WriteDelay"/>, at most a sixth of
    /// <see cref="LeaseDuration"/> (a lease renewal waits in it like any other op).
    /// </summary>
    internal TimeSpan EffectiveWriteDelay => WriteDelay < LeaseDuration / 6 ? WriteDelay : LeaseDuration / 6;

    /// <summary>The retry window in effect: <see cref="WriteRetryWindow"/>, shortened to fit the lease (after the gathering wait).</summary>
    internal TimeSpan EffectiveWriteRetryWindow
    {
        get
        {
            var fits = LeaseDuration - (LeaseDuration / 3) - OperationTimeout - EffectiveWriteDelay;
            return fits < WriteRetryWindow ? (fits > TimeSpan.Zero ? fits : TimeSpan.Zero) : WriteRetryWindow;
        }
    }
}
