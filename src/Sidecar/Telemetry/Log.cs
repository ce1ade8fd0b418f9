using Microsoft.Extensions.Logging;

namespace Sidecar.Telemetry;

/// <summary>
/// Every log event the sidecar writes, with its id: this file is the registry of event ids.
/// Ids are grouped by capability: 1xx proxy, 2xx streams.
/// Session and message ids are logged (they are opaque ids), never credentials or message content.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Upstream request failed before headers: {Error} ({ForwarderError}, {ExceptionType}); answered {StatusCode}")]
    public static partial void UpstreamFailedBeforeHeaders(ILogger logger, string error, string forwarderError, string? exceptionType, int statusCode);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Chat request body over {Limit} bytes refused with 413")]
    public static partial void RequestBodyTooLarge(ILogger logger, long limit);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Using the default proxy configuration: every path to {Upstream}")]
    public static partial void DefaultProxyConfig(ILogger logger, string upstream);

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Stream ended: session {SessionId} message {MessageId} outcome {Outcome}, {Events} events, {Bytes} bytes, {ElapsedMs:F0} ms")]
    public static partial void StreamEnded(ILogger logger, string sessionId, string? messageId, string outcome, long events, long bytes, double elapsedMs);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Upstream body failed mid-stream: session {SessionId} message {MessageId} ({ExceptionType})")]
    public static partial void UpstreamReadFailed(ILogger logger, string sessionId, string? messageId, string exceptionType);

    [LoggerMessage(EventId = 202, Level = LogLevel.Debug, Message = "Client left the stream: session {SessionId} message {MessageId}; upstream drained: {Draining}")]
    public static partial void ClientDisconnected(ILogger logger, string sessionId, string? messageId, bool draining);

    [LoggerMessage(EventId = 204, Level = LogLevel.Error, Message = "Stream pump failed unexpectedly: session {SessionId} message {MessageId}")]
    public static partial void PumpFailed(ILogger logger, string sessionId, string? messageId, Exception exception);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "The start part's messageId differs from x-message-id: session {SessionId} message {MessageId}")]
    public static partial void StartMessageIdMismatch(ILogger logger, string sessionId, string? messageId);
}
