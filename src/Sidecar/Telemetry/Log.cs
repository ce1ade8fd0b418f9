using Microsoft.Extensions.Logging;

namespace Sidecar.Telemetry;

/// <summary>
/// Every log event the sidecar writes, with its id: this file is the registry of event ids.
/// Ids are grouped by capability: 1xx proxy, 2xx streams, 3xx store and resume, 4xx persistence, 5xx quota.
/// Session and message ids are logged (they are opaque ids), never credentials or message content.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Upstream request failed before headers: {Error} ({ForwarderError}, {ExceptionType}); answered {StatusCode}")]
    public static partial void UpstreamFailedBeforeHeaders(ILogger logger, string error, string forwarderError, string? exceptionType, int statusCode);

    [LoggerMessage(EventId = 103, Level = LogLevel.Debug, Message = "Upstream error body ({StatusCode}, {Bytes} bytes) normalised to the contract's shape")]
    public static partial void ErrorBodyNormalized(ILogger logger, int statusCode, int bytes);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Chat request body over {Limit} bytes refused with 413")]
    public static partial void RequestBodyTooLarge(ILogger logger, long limit);

    [LoggerMessage(EventId = 102, Level = LogLevel.Debug, Message = "Client left the chat request before the upstream answered: session {SessionId}; the request goes on")]
    public static partial void ClientLeftBeforeHeaders(ILogger logger, string sessionId);

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Stream ended: session {SessionId} message {MessageId} outcome {Outcome}, {Events} events, {Bytes} bytes, {ElapsedMs:F0} ms")]
    public static partial void StreamEnded(ILogger logger, string sessionId, string? messageId, string outcome, long events, long bytes, double elapsedMs);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Upstream body failed mid-stream: session {SessionId} message {MessageId} ({Error})")]
    public static partial void UpstreamReadFailed(ILogger logger, string sessionId, string? messageId, string error);

    [LoggerMessage(EventId = 202, Level = LogLevel.Debug, Message = "Client left the stream: session {SessionId} message {MessageId}; the upstream is drained")]
    public static partial void ClientDisconnected(ILogger logger, string sessionId, string? messageId);

    [LoggerMessage(EventId = 204, Level = LogLevel.Error, Message = "Stream pump failed unexpectedly: session {SessionId} message {MessageId}")]
    public static partial void PumpFailed(ILogger logger, string sessionId, string? messageId, Exception exception);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning, Message = "Live client fell more than {Limit} bytes behind: session {SessionId} message {MessageId}; its connection is closed, the upstream is drained")]
    public static partial void LiveClientTooSlow(ILogger logger, string sessionId, string? messageId, long limit);

    [LoggerMessage(EventId = 210, Level = LogLevel.Information, Message = "Live client fell more than {Limit} bytes behind: session {SessionId} message {MessageId}; it reads on from the store")]
    public static partial void LiveClientBehind(ILogger logger, string sessionId, string? messageId, long limit);

    [LoggerMessage(EventId = 211, Level = LogLevel.Information, Message = "Live client fell behind before its stream's registration was stored: session {SessionId} message {MessageId}; it reads on from the store once it is")]
    public static partial void LiveClientAwaitsRegistration(ILogger logger, string sessionId, string? messageId);

    [LoggerMessage(EventId = 212, Level = LogLevel.Warning, Message = "Stream registration not settled within {LimitSeconds} s: session {SessionId} message {MessageId}; its live client, which fell behind, reads the store anyway (resume unavailable if the stream is still missing)")]
    public static partial void LiveClientRegistrationUnsettled(ILogger logger, string sessionId, string? messageId, double limitSeconds);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "Releasing the upstream connection failed: session {SessionId} message {MessageId} ({ExceptionType})")]
    public static partial void UpstreamReleaseFailed(ILogger logger, string sessionId, string? messageId, string exceptionType);

    [LoggerMessage(EventId = 207, Level = LogLevel.Information, Message = "Shutting down: {Count} streams may run for up to {DrainSeconds} s more")]
    public static partial void Draining(ILogger logger, int count, double drainSeconds);

    [LoggerMessage(EventId = 208, Level = LogLevel.Error, Message = "A stream-ended handler failed")]
    public static partial void EndedHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 209, Level = LogLevel.Warning, Message = "Upstream body ended inside an event of an unfinished answer: session {SessionId} message {MessageId}; the {Bytes} bytes of the half event are dropped")]
    public static partial void UpstreamEndedInsideEvent(ILogger logger, string sessionId, string? messageId, int bytes);

    [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "An in-band persistence part is not an acknowledgment of this answer: session {SessionId} message {MessageId}; ignored")]
    public static partial void InBandAckInvalid(ILogger logger, string sessionId, string? messageId);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "Answer not saved: session {SessionId} message {MessageId} (ack source {Source}, error {Error}); the client is told")]
    public static partial void PersistenceNotSaved(ILogger logger, string sessionId, string? messageId, string source, string? error);

    [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "Save acknowledgment for message {MessageId}: {Status}, applied {Where}")]
    public static partial void AckAccepted(ILogger logger, string messageId, string status, string where);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Save acknowledgment callback refused: {Reason}")]
    public static partial void AckRejected(ILogger logger, string reason);

    [LoggerMessage(EventId = 404, Level = LogLevel.Information, Message = "Save probe for session {SessionId} message {MessageId} stopped without a saved answer ({Reason})")]
    public static partial void ProbeGaveUp(ILogger logger, string sessionId, string messageId, string reason);

    [LoggerMessage(EventId = 405, Level = LogLevel.Information, Message = "Save repair of message {MessageId}: saved (attempt {Attempt})")]
    public static partial void RepairSaved(ILogger logger, string messageId, int attempt);

    [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Save repair of message {MessageId} refused by the service (status {Status}); dropped")]
    public static partial void RepairRejected(ILogger logger, string messageId, int? status);

    [LoggerMessage(EventId = 407, Level = LogLevel.Information, Message = "Save repair of message {MessageId} failed (attempt {Attempt}, status {Status}); next try in {DelaySeconds:F1} s")]
    public static partial void RepairRetry(ILogger logger, string messageId, int attempt, int? status, double delaySeconds);

    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Reservation {MessageId}: {Action} settled (attempt {Attempt})")]
    public static partial void QuotaSettled(ILogger logger, string messageId, string action, int attempt);

    [LoggerMessage(EventId = 501, Level = LogLevel.Warning, Message = "Reservation {MessageId}: wanted {Action}, found {Found} (stream ended {Reason})")]
    public static partial void QuotaMismatch(ILogger logger, string messageId, string action, string found, string reason);

    [LoggerMessage(EventId = 502, Level = LogLevel.Warning, Message = "Reservation {MessageId}: {Action} answered 404, the quota API does not know it; dropped")]
    public static partial void QuotaUnknownReservation(ILogger logger, string messageId, string action);

    [LoggerMessage(EventId = 503, Level = LogLevel.Information, Message = "Reservation {MessageId}: {Action} failed (attempt {Attempt}, status {Status}, {Detail}); next try in {DelaySeconds:F1} s")]
    public static partial void QuotaRetry(ILogger logger, string messageId, string action, int attempt, int? status, string? detail, double delaySeconds);

    [LoggerMessage(EventId = 504, Level = LogLevel.Warning, Message = "Quota reconciler round failed ({ExceptionType}); the outbox keeps its items")]
    public static partial void QuotaRoundFailed(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 505, Level = LogLevel.Information, Message = "Quota sweep: {Found} reservations stuck in reserved, {Released} queued for release")]
    public static partial void QuotaSweep(ILogger logger, int found, int released);

    [LoggerMessage(EventId = 506, Level = LogLevel.Warning, Message = "Recording the {Action} of reservation {MessageId} failed (attempt {Attempt}, {ExceptionType}); trying again")]
    public static partial void QuotaEnqueueFailed(ILogger logger, string messageId, string action, int attempt, string exceptionType);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "The start part's messageId differs from x-message-id: session {SessionId} message {MessageId}")]
    public static partial void StartMessageIdMismatch(ILogger logger, string sessionId, string? messageId);

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Stream {MessageId} lost resume: a store write was {Reason}; the live answer goes on")]
    public static partial void StoreWriteLost(ILogger logger, string messageId, string reason);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "A store write batch of {Streams} streams failed, attempt {Attempt} ({ExceptionType})")]
    public static partial void StoreWriteFailed(ILogger logger, int streams, int attempt, string exceptionType);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Stream of session {SessionId} is not teed: its message id is missing or invalid")]
    public static partial void StreamNotTeed(ILogger logger, string sessionId);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "Resume of session {SessionId}: {Result}")]
    public static partial void ResumeResult(ILogger logger, string sessionId, string result);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "Resume of session {SessionId} failed: the store did not answer ({ExceptionType})")]
    public static partial void ResumeStoreFailed(ILogger logger, string sessionId, string exceptionType);

    [LoggerMessage(EventId = 312, Level = LogLevel.Information, Message = "A replay of message {MessageId} could not read the store ({ExceptionType}); trying again for up to {WindowSeconds} s")]
    public static partial void ReplayStoreRetrying(ILogger logger, string messageId, string exceptionType, double windowSeconds);

    [LoggerMessage(EventId = 313, Level = LogLevel.Warning, Message = "A replay of message {MessageId} ends with the resume error at event {Next}: {Reason}")]
    public static partial void ReplayStoreLacks(ILogger logger, string messageId, long next, string reason);

    [LoggerMessage(EventId = 305, Level = LogLevel.Warning, Message = "The replica {ReplicaId} producing session {SessionId} message {MessageId} let its lease lapse: the stream is ended for its resumers")]
    public static partial void ProducerLost(ILogger logger, string sessionId, string messageId, string replicaId);

    [LoggerMessage(EventId = 309, Level = LogLevel.Information, Message = "A resume or stop presented a session token that does not verify ({Reason}): refused as a stranger's")]
    public static partial void ResumeTokenRefused(ILogger logger, string reason);

    [LoggerMessage(EventId = 311, Level = LogLevel.Information, Message = "A resume or stop presented a session token issued to the origin {AuthorizedParty}, not one of Sidecar:Resume:JwtAuthorizedParties: refused as a stranger's")]
    public static partial void ResumeTokenOtherParty(ILogger logger, string authorizedParty);

    [LoggerMessage(EventId = 310, Level = LogLevel.Warning, Message = "The session tokens' signing keys could not be fetched from {Url} ({ExceptionType}); keys kept from before: {KeptKeys}")]
    public static partial void JwksFetchFailed(ILogger logger, string url, string exceptionType, bool keptKeys);

    [LoggerMessage(EventId = 306, Level = LogLevel.Information, Message = "Stop requested by its owner: session {SessionId} message {MessageId}")]
    public static partial void StreamStopRequested(ILogger logger, string sessionId, string messageId);

    [LoggerMessage(EventId = 307, Level = LogLevel.Information, Message = "Stop of session {SessionId}: {Result}")]
    public static partial void StopResult(ILogger logger, string sessionId, string result);

    [LoggerMessage(EventId = 308, Level = LogLevel.Information, Message = "Store writer stopped: {Batches} write batches for {Events} events")]
    public static partial void StoreWriterTotals(ILogger logger, long batches, long events);
}
