namespace Sidecar.Streams;

/// <summary>The kind of chat-route request a stream answers.</summary>
internal enum ChatRequestKind
{
    /// <summary>POST: a new answer; the sidecar drains it to the end even when the client leaves.</summary>
    Answer,

    /// <summary>GET: a resume of the session's active stream.</summary>
    Resume,
}

/// <summary>
/// Per-request feature set on chat-route requests before YARP forwards them; the response
/// transform hands the upstream body to a <see cref="StreamPump"/> through it.
/// </summary>
internal sealed class ChatExchange(string agentId, string sessionId, ChatRequestKind kind, string requestId)
{
    public string AgentId { get; } = agentId;

    public string SessionId { get; } = sessionId;

    public ChatRequestKind Kind { get; } = kind;

    public string RequestId { get; } = requestId;

    /// <summary>Set when the upstream answered with an event stream that the sidecar now owns.</summary>
    public StreamPump? Pump { get; set; }
}
