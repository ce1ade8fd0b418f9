namespace Sidecar.Streams;

/// <summary>
/// Per-request feature set on chat POSTs before YARP forwards them; the response transform hands
/// the upstream body to a <see cref="StreamPump"/> through it.
/// </summary>
internal sealed class ChatExchange(string agentId, string sessionId, string requestId, string ownerHash, bool signedIn = false)
{
    /// <summary>Whether the request carried a credential (bearer token or session cookie), not an anonymous session.</summary>
    public bool SignedIn { get; } = signedIn;

    /// <summary>The quota reservation the answer holds (from the configured response header), or null.</summary>
    public string? ReservationId { get; set; }

    /// <summary>The reservation was settled while the stream ended (its live release): nothing is left to record.</summary>
    public bool ReservationSettled { get; set; }

    /// <summary>The hash of the identity of the principal that sent the request.</summary>
    public string OwnerHash { get; } = ownerHash;

    public string AgentId { get; } = agentId;

    public string SessionId { get; } = sessionId;

    public string RequestId { get; } = requestId;

    /// <summary>Set when the upstream answered with an event stream that the sidecar now owns.</summary>
    public StreamPump? Pump { get; set; }
}
