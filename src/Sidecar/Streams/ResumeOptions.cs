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

    /// <summary>How often a resumer following a live stream re-reads the store when no notification came.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan FollowPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A name for this replica in the store (which replica produces a stream); empty picks the host name and a random suffix.</summary>
    public string? ReplicaId { get; set; }
}
