namespace ChatUpstream;

/// <summary>Emulator settings (section <c>Emulator</c>).</summary>
public sealed class EmulatorOptions
{
    /// <summary>Delay between parts when the scenario names no <c>pace</c>.</summary>
    public int DefaultPaceMs { get; set; } = 20;

    /// <summary>Text deltas per answer when the scenario names no <c>deltas</c>.</summary>
    public int DefaultDeltas { get; set; } = 12;

    /// <summary>The longest a <c>stall</c> scenario keeps its connection open.</summary>
    public TimeSpan StallLimit { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Where <c>callback</c> scenarios post their save acknowledgment (the sidecar's
    /// <c>/sidecar/v1/acks/{messageId}</c> on its management port); <c>{messageId}</c> is replaced.
    /// </summary>
    public string? AckCallbackUrl { get; set; }

    /// <summary>The bearer token sent with acknowledgment callbacks.</summary>
    public string? AckCallbackToken { get; set; }

    /// <summary>The fraction of quota API calls answered 503 (spread evenly).</summary>
    public double QuotaFailureRate { get; set; }

    /// <summary>Delay before each quota API answer.</summary>
    public int QuotaLatencyMs { get; set; }

    /// <summary>The bearer token the quota API requires; null accepts any caller.</summary>
    public string? QuotaServiceToken { get; set; }

    /// <summary>
    /// Settle reservations as the real service does (contract section 7): confirm as soon as the
    /// handler answers, fire-and-forget; on an error, release with 3 tries, 200 ms × attempt apart.
    /// </summary>
    public bool SelfSettle { get; set; }

    /// <summary>
    /// Resume as the service does it (contract section 4): each answer's bytes are kept in memory
    /// while it runs, and a GET for its session answers 200 with a full replay, then the live
    /// parts to its end; with no answer running, 204. Off: GET always answers 204 (the benchmarks
    /// turn it off, so that the copy costs the emulator nothing there).
    /// </summary>
    public bool ResumableStreams { get; set; } = true;

    /// <summary>The contract's request body limit.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1_000_000;
}
