using System.ComponentModel.DataAnnotations;

namespace Sidecar.Persistence;

/// <summary>
/// How the sidecar learns that an answer was saved (section <c>Sidecar:Persistence</c>). While an
/// acknowledgment is awaited, the upstream's <c>finish</c> and everything after it are held back.
/// </summary>
public sealed class PersistenceOptions
{
    public const string SectionName = "Sidecar:Persistence";

    /// <summary>Where acknowledgments come from; <see cref="PersistenceAckMode.None"/> lets <c>finish</c> through at once.</summary>
    public PersistenceAckMode Mode { get; set; } = PersistenceAckMode.None;

    /// <summary>How long <c>finish</c> is held for an acknowledgment; past it, the client is told the save failed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:05:00")]
    public TimeSpan AckTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether the upstream's in-band <c>data-persistence</c> part is removed from the client's stream.</summary>
    public bool RemoveInBandAck { get; set; } = true;

    /// <summary>
    /// The bearer token that authenticates acknowledgment callbacks
    /// (<c>POST /sidecar/v1/acks/{messageId}</c> on the management port). Required for
    /// <see cref="PersistenceAckMode.Callback"/>; set it from a secret
    /// (<c>Sidecar__Persistence__CallbackToken</c>).
    /// </summary>
    public string? CallbackToken { get; set; }

    /// <summary>
    /// The URL the probe asks whether a message is saved (200: saved), with the placeholders
    /// <c>{upstream}</c>, <c>{agentId}</c>, <c>{sessionId}</c> and <c>{messageId}</c>.
    /// Required for <see cref="PersistenceAckMode.Probe"/>.
    /// </summary>
    public string? ProbeUrl { get; set; }

    /// <summary>
    /// Save repair: where an answer whose save failed is submitted again, rebuilt from its parts as
    /// the AI SDK's <c>UIMessage</c>, in a POST of <c>{"sessionId","message"}</c>; placeholders
    /// <c>{upstream}</c>, <c>{sessionId}</c>, <c>{messageId}</c>. Empty turns repair off. Retried from
    /// the same outbox as quota settlements until saved.
    /// </summary>
    public string? RepairSaveUrl { get; set; }

    /// <summary>The bearer token of save repair calls (from a secret: <c>Sidecar__Persistence__RepairToken</c>).</summary>
    public string? RepairToken { get; set; }

    /// <summary>The probe's first retry delay; later ones grow exponentially, with jitter.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan ProbeRetryDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest delay between two probes.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan ProbeMaxRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one probe request may take.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan ProbeAttemptTimeout { get; set; } = TimeSpan.FromSeconds(2);
}

/// <summary>Where acknowledgments of saved answers come from.</summary>
public enum PersistenceAckMode
{
    /// <summary>No acknowledgment is awaited: <c>finish</c> goes through at once (the service's behaviour today).</summary>
    None,

    /// <summary>
    /// The upstream sends <c>{"type":"data-persistence","data":{"messageId":"…","status":"saved"|"failed","error":"…"?},"transient":true}</c>
    /// after <c>finish</c>.
    /// </summary>
    InBand,

    /// <summary>The service calls <c>POST /sidecar/v1/acks/{messageId}</c> on any replica's management port.</summary>
    Callback,

    /// <summary>The sidecar asks <see cref="PersistenceOptions.ProbeUrl"/> until it answers 200 or the deadline passes.</summary>
    Probe,
}
