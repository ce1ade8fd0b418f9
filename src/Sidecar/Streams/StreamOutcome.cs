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
        _ => throw new ArgumentOutOfRangeException(nameof(outcome), outcome, null),
    };

    /// <summary>Whether the upstream's body ended by itself (as opposed to the sidecar cutting it off or it failing).</summary>
    public static bool UpstreamEndedCleanly(this StreamOutcome outcome) =>
        outcome is StreamOutcome.Completed or StreamOutcome.UpstreamErrorPart or StreamOutcome.EndedWithoutFinish or StreamOutcome.Stopped;
}
