using System.ComponentModel.DataAnnotations;

namespace Sidecar.Quota;

/// <summary>
/// Settling quota reservations (section <c>Sidecar:Quota</c>): the quota API the sidecar calls, and
/// how the reconciler works its outbox. Off until <see cref="BaseUrl"/> is set.
/// </summary>
public sealed class QuotaOptions
{
    public const string SectionName = "Sidecar:Quota";

    /// <summary>The quota API's base URL; empty turns reconciliation off.</summary>
    public string? BaseUrl { get; set; }

    /// <summary>Confirms a reservation; <c>{messageId}</c> is replaced.</summary>
    [Required]
    public string ConfirmPath { get; set; } = "/reservations/{messageId}/confirm";

    /// <summary>Releases a reservation; <c>{messageId}</c> is replaced.</summary>
    [Required]
    public string ReleasePath { get; set; } = "/reservations/{messageId}/release";

    /// <summary>Lists reservations stuck in <c>reserved</c>; <c>{olderThanMs}</c> is replaced.</summary>
    [Required]
    public string ListPath { get; set; } = "/reservations?status=reserved&olderThanMs={olderThanMs}";

    /// <summary>The bearer token of the sidecar's calls (set it from a secret: <c>Sidecar__Quota__ServiceToken</c>).</summary>
    public string? ServiceToken { get; set; }

    /// <summary>The upstream response header that carries the reservation id of a chat POST.</summary>
    [Required]
    public string ReservationHeader { get; set; } = "x-message-id";

    /// <summary>Only signed-in requests (bearer token or session cookie) hold reservations, as in the service.</summary>
    public bool SignedInOnly { get; set; } = true;

    /// <summary>
    /// When an answer fails while its client is still connected, release its reservation at once
    /// and, if that fails, tell the client with a transient <c>data-quota-warning</c> part (the
    /// release is then retried from the outbox).
    /// </summary>
    public bool WarnClient { get; set; } = true;

    /// <summary>The text of the <c>data-quota-warning</c> part.</summary>
    [Required]
    public string WarningMessage { get; set; } = "We couldn't restore the quota this message used yet. It will be restored shortly.";

    /// <summary>The text of the warning when the release found the reservation already confirmed (nothing will restore it).</summary>
    [Required]
    public string NotRestoredMessage { get; set; } = "We couldn't restore the quota this message used.";

    /// <summary>How long the release of a failed answer may hold up its client's ending.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:00:10")]
    public TimeSpan InlineReleaseTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How often an idle reconciler looks for due items.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a claim on an outbox item lasts; a replica that dies holding it loses it after this. At least four times the longest call (<c>AttemptTimeout</c>, and <c>Persistence:ProbeAttemptTimeout</c> with save repair).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Items claimed per round.</summary>
    [Range(1, 1000)]
    public int BatchSize { get; set; } = 32;

    /// <summary>The first delay before an item is tried again; it doubles (with jitter) up to <see cref="MaxRetryDelay"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest delay between two tries of an item. Items are never dropped for failing.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long one quota API call may take.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Failure ratio over <see cref="BreakerSamplingDuration"/> that opens the circuit breaker.</summary>
    [Range(0.01, 1.0)]
    public double BreakerFailureRatio { get; set; } = 0.5;

    /// <summary>The fewest calls within the sampling duration before the breaker may open.</summary>
    [Range(2, 10000)]
    public int BreakerMinimumThroughput { get; set; } = 10;

    /// <summary>The window over which the breaker measures the failure ratio.</summary>
    [Range(typeof(TimeSpan), "00:00:00.500", "00:10:00")]
    public TimeSpan BreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the breaker stays open: no call reaches the quota API meanwhile.</summary>
    [Range(typeof(TimeSpan), "00:00:00.500", "00:10:00")]
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often stuck reservations are looked for; zero turns the sweep off.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a reservation may stay <c>reserved</c> before the sweep releases it (when no stream of it is live); with the sweep on, longer than <c>Streams:MaxDuration</c> plus <c>Persistence:AckTimeout</c>.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan StuckAfter { get; set; } = TimeSpan.FromMinutes(45);
}
