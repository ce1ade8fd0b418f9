namespace Sidecar.Streams;

/// <summary>How a pumped stream ended: one closed set, mapped in one place to logs and metric tags.</summary>
internal enum StreamOutcome
{
    /// <summary>The upstream sent <c>finish</c> and ended its body.</summary>
    Completed,

    /// <summary>The upstream sent its own <c>error</c> part and ended its body.</summary>
    UpstreamErrorPart,

    /// <summary>The upstream ended its body cleanly but early, without <c>finish</c>.</summary>
    EndedWithoutFinish,

    /// <summary>The upstream connection failed mid-body (reset, premature end).</summary>
    UpstreamFailed,

    /// <summary>The upstream was silent for longer than the idle timeout.</summary>
    UpstreamIdle,

    /// <summary>One event was larger than the event size limit.</summary>
    EventTooLarge,

    /// <summary>The stream carried more bytes than the stream size limit.</summary>
    StreamTooLarge,

    /// <summary>The stream ran longer than its maximum duration.</summary>
    MaxDurationExceeded,

    /// <summary>The sidecar is shutting down.</summary>
    ShuttingDown,

    /// <summary>Its owner asked to stop generating (DELETE on the chat route).</summary>
    Stopped,

    /// <summary>The answer finished, but its save was reported failed (an ack, or the upstream's own persistence error).</summary>
    PersistenceFailed,

    /// <summary>The answer finished, but no acknowledgment of its save came before the deadline.</summary>
    PersistenceUnacknowledged,
}

internal static class StreamOutcomes
{
    /// <summary>The metric tag / log word for an outcome.</summary>
    public static string Tag(this StreamOutcome outcome) => outcome switch
    {
        StreamOutcome.Completed => "completed",
        StreamOutcome.UpstreamErrorPart => "upstream_error_part",
        StreamOutcome.EndedWithoutFinish => "ended_without_finish",
        StreamOutcome.UpstreamFailed => "upstream_failed",
        StreamOutcome.UpstreamIdle => "upstream_idle",
        StreamOutcome.EventTooLarge => "event_too_large",
        StreamOutcome.StreamTooLarge => "stream_too_large",
        StreamOutcome.MaxDurationExceeded => "max_duration",
        StreamOutcome.ShuttingDown => "shutting_down",
        StreamOutcome.Stopped => "stopped",
        StreamOutcome.PersistenceFailed => "persistence_failed",
        StreamOutcome.PersistenceUnacknowledged => "persistence_unacknowledged",
        _ => throw new ArgumentOutOfRangeException(nameof(outcome), outcome, null),
    };

    /// <summary>
    /// The error part the sidecar ends a stream with when it ended this way and the upstream said
    /// nothing itself (no <c>error</c> part of its own): null for the endings that need none.
    /// </summary>
    public static Errors.SidecarError? InjectedError(this StreamOutcome outcome) => outcome switch
    {
        StreamOutcome.Completed or StreamOutcome.UpstreamErrorPart or StreamOutcome.Stopped => null,
        StreamOutcome.EndedWithoutFinish or StreamOutcome.UpstreamFailed or StreamOutcome.EventTooLarge
            or StreamOutcome.StreamTooLarge => Errors.SidecarError.StreamInterrupted,
        StreamOutcome.UpstreamIdle or StreamOutcome.MaxDurationExceeded => Errors.SidecarError.StreamTimedOut,
        StreamOutcome.ShuttingDown => Errors.SidecarError.StreamShutDown,
        StreamOutcome.PersistenceFailed or StreamOutcome.PersistenceUnacknowledged => Errors.SidecarError.PersistenceFailed,
        _ => throw new ArgumentOutOfRangeException(nameof(outcome), outcome, null),
    };

    /// <summary>Whether the upstream's body ended by itself (as opposed to the sidecar cutting it off or it failing).</summary>
    public static bool UpstreamEndedCleanly(this StreamOutcome outcome) =>
        outcome is StreamOutcome.Completed or StreamOutcome.UpstreamErrorPart or StreamOutcome.EndedWithoutFinish or StreamOutcome.Stopped;
}
