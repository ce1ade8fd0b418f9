using System.ComponentModel.DataAnnotations;

namespace Sidecar.Streams;

/// <summary>How resume behaves (section <c>Sidecar:Resume</c>).</summary>
public sealed class ResumeOptions
{
    public const string SectionName = "Sidecar:Resume";

    /// <summary>
    /// Each forwarded event carries an SSE <c>id:</c> (its position in the stream), so that a
    /// client sending <c>Last-Event-ID</c> resumes after it with no duplicate and no gap.
    /// </summary>
    public bool EventIds { get; set; } = true;

    /// <summary>
    /// The status for a resume by someone other than the stream's owner: 204 (as "no stream", so
    /// existence does not leak), 403 or 404.
    /// </summary>
    [AllowedValues(204, 403, 404)]
    public int DeniedStatus { get; set; } = 204;

    /// <summary>
    /// A secret, the same on every replica, that keys the owner hashes stored with each stream
    /// (HMAC-SHA256). Without it the hash is a plain SHA-256 that anyone who can read Redis could
    /// test guesses against. Set it from a Kubernetes secret (<c>Sidecar__Resume__OwnerHashKey</c>).
    /// </summary>
    public string? OwnerHashKey { get; set; }

    /// <summary>How often a resumer following a live stream re-reads the store when no notification came.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan FollowPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How the live client learns that its answer cannot be resumed (the store failed).</summary>
    public ResumeUnavailableSignal UnavailableSignal { get; set; } = ResumeUnavailableSignal.ErrorPart;

    /// <summary>A name for this replica in the store (which replica produces a stream); empty picks the host name and a random suffix.</summary>
    public string? ReplicaId { get; set; }
}

/// <summary>How a live client learns that the store failed and its answer cannot be resumed.</summary>
public enum ResumeUnavailableSignal
{
    /// <summary>
    /// Like the service itself: an <c>error</c> part with <c>category:"resume"</c> ("We couldn't enable
    /// stream resume for this session.") after <c>finish</c>, before <c>[DONE]</c>; not when the
    /// upstream already sent an error part (only the first counts).
    /// </summary>
    ErrorPart,

    /// <summary>A transient <c>data-resume-unavailable</c> part as soon as the loss is known; the answer ends normally.</summary>
    DataPart,

    /// <summary>A typed 503 before streaming when the store is already unreachable; losses mid-stream as <see cref="ErrorPart"/>.</summary>
    FailFast,

    /// <summary>Nothing is said; the metric and the log still record it.</summary>
    None,
}
