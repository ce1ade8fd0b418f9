namespace Sidecar.Errors;

/// <summary>
/// The errors the sidecar itself answers with. Each maps in one place to its contract type,
/// wording and error code.
/// </summary>
internal enum SidecarError
{
    /// <summary>The upstream could not be reached (refused, unreachable, no destination).</summary>
    UpstreamUnavailable,

    /// <summary>The upstream did not answer with headers in time.</summary>
    UpstreamTimeout,

    /// <summary>The chat request body is over the contract's limit.</summary>
    RequestTooLarge,

    /// <summary>The client's request body could not be read.</summary>
    BadRequestBody,

    /// <summary>A session, agent or message id is empty, too long, or has characters ids never have.</summary>
    InvalidId,

    /// <summary>The <c>Last-Event-ID</c> of a resume is not an event position.</summary>
    InvalidLastEventId,

    /// <summary>The stream store could not answer, or no longer holds the whole stream.</summary>
    ResumeUnavailable,

    /// <summary>A resume by someone other than the stream's owner, when configured to say so (403).</summary>
    ResumeForbidden,

    /// <summary>A resume by someone other than the stream's owner, when configured to say so (404).</summary>
    ResumeNotFound,

    /// <summary>The live answer streams, but the store lost it: a reload will not find it.</summary>
    ResumeNotEnabled,

    /// <summary>
    /// The upstream's stream broke off before <c>finish</c> (reset, early end, an oversized event or
    /// stream), or a resumed stream had ended badly without saying so in its stored events.
    /// </summary>
    StreamInterrupted,

    /// <summary>The upstream went silent for longer than the idle timeout, or the stream ran past its maximum duration.</summary>
    StreamTimedOut,

    /// <summary>The sidecar shut down before the stream finished (past the drain deadline).</summary>
    StreamShutDown,

    /// <summary>The assistant message was not saved: a failed acknowledgment, or none before the deadline.</summary>
    PersistenceFailed,

    /// <summary>An acknowledgment callback without the right bearer token.</summary>
    AckUnauthorized,

    /// <summary>An acknowledgment callback whose id or body is not an acknowledgment.</summary>
    AckInvalid,

    /// <summary>An acknowledgment for a message no replica and no store knows.</summary>
    AckUnknownMessage,

    /// <summary>An acknowledgment that could not be passed on: the store (Redis) did not answer.</summary>
    AckStoreUnavailable,

    /// <summary>The sidecar is shutting down: new chats go to another replica.</summary>
    Draining,

    /// <summary>The replica producing a stream stopped renewing its lease: it is gone, and so is the rest of the answer.</summary>
    ProducerLost,
}

/// <summary>Builds <see cref="ErrorBody"/> values for <see cref="SidecarError"/>s.</summary>
internal static class SidecarErrors
{
    public const string Source = "sidecar";

    /// <summary>The error body of <paramref name="error"/>; <paramref name="reason"/> (an outcome tag such as <c>upstream_idle</c>) goes into <c>metadata.reason</c>.</summary>
    public static ErrorBody Create(SidecarError error, TimeProvider time, string? requestId, string? sessionId = null, string? messageId = null, string? reason = null)
    {
        var (type, title, message, code) = error switch
        {
            SidecarError.InvalidId => (ErrorType.InvalidRequest, "Invalid request",
                "The session or agent id is not valid.", "INVALID_ID"),
            SidecarError.InvalidLastEventId => (ErrorType.InvalidRequest, "Invalid request",
                "Last-Event-ID must be the id of an event of this stream.", "INVALID_LAST_EVENT_ID"),
            SidecarError.ResumeUnavailable => (ErrorType.ServiceUnavailable, "Resume unavailable",
                "We couldn't resume this response. Refreshing may lose it.", "RESUME_UNAVAILABLE"),
            SidecarError.ResumeForbidden => (ErrorType.SecurityBlocked, "Forbidden",
                "This stream belongs to someone else.", "RESUME_FORBIDDEN"),
            SidecarError.ResumeNotFound => (ErrorType.InvalidRequest, "Not found",
                "There is no stream to resume.", "RESUME_NOT_FOUND"),
            SidecarError.ResumeNotEnabled => (ErrorType.ServerError, "Resume unavailable",
                "We couldn't enable stream resume for this session.", "RESUME_NOT_ENABLED"),
            SidecarError.StreamInterrupted => (ErrorType.ServerError, "Stream interrupted",
                "The response was interrupted before it finished. Please try again.", "STREAM_INTERRUPTED"),
            SidecarError.StreamTimedOut => (ErrorType.Timeout, "Stream timed out",
                "The response took too long and was stopped. Please try again.", "STREAM_TIMEOUT"),
            SidecarError.StreamShutDown => (ErrorType.ServiceUnavailable, "Service restarting",
                "The service restarted before the response finished. Please try again.", "STREAM_SHUT_DOWN"),
            SidecarError.PersistenceFailed => (ErrorType.ServerError, "Persistence error",
                "We couldn't save this response. Refreshing may lose it.", "PERSISTENCE_FAILED"),
            SidecarError.AckUnauthorized => (ErrorType.Authentication, "Unauthorized",
                "A valid bearer token is required.", "ACK_UNAUTHORIZED"),
            SidecarError.AckInvalid => (ErrorType.InvalidRequest, "Invalid request",
                "Expected {\"status\":\"saved\"|\"failed\",\"error\"?} for a valid message id.", "ACK_INVALID"),
            SidecarError.AckUnknownMessage => (ErrorType.InvalidRequest, "Not found",
                "No stream of this message is known.", "ACK_UNKNOWN_MESSAGE"),
            SidecarError.AckStoreUnavailable => (ErrorType.ServiceUnavailable, "Service unavailable",
                "The acknowledgment could not be passed on; send it again.", "ACK_STORE_UNAVAILABLE"),
            SidecarError.Draining => (ErrorType.ServiceUnavailable, "Service restarting",
                "This server is restarting. Please try again.", "SIDECAR_DRAINING"),
            SidecarError.ProducerLost => (ErrorType.ServerError, "Stream interrupted",
                "The response was interrupted before it finished. Please try again.", "PRODUCER_LOST"),
            SidecarError.UpstreamUnavailable => (ErrorType.ServiceUnavailable, "Service unavailable",
                "The chat service is not reachable right now. Please try again in a moment.", "UPSTREAM_UNAVAILABLE"),
            SidecarError.UpstreamTimeout => (ErrorType.Timeout, "Request timed out",
                "The chat service took too long to respond. Please try again.", "UPSTREAM_TIMEOUT"),
            SidecarError.RequestTooLarge => (ErrorType.PayloadTooLarge, "Payload too large",
                "The message is too large to send. Please shorten it or remove attachments.", "REQUEST_TOO_LARGE"),
            SidecarError.BadRequestBody => (ErrorType.InvalidRequest, "Invalid request",
                "The request body could not be read.", "BAD_REQUEST_BODY"),
            _ => throw new ArgumentOutOfRangeException(nameof(error), error, null),
        };

        return new ErrorBody(
            type.WireName(),
            title,
            message,
            error is SidecarError.ResumeNotFound or SidecarError.AckUnknownMessage ? 404 : type.StatusCode(),
            code,
            Source,
            Category: error switch
            {
                SidecarError.ResumeUnavailable or SidecarError.ResumeNotEnabled => "resume",
                SidecarError.ProducerLost or SidecarError.StreamInterrupted or SidecarError.StreamTimedOut or SidecarError.StreamShutDown => "stream",
                SidecarError.PersistenceFailed => "persistence",
                _ => null,
            },
            Severity: "recoverable",
            new ErrorMetadata(Timestamp(time), requestId, sessionId, messageId, Reason: reason ?? (error == SidecarError.ProducerLost ? "producer_lost" : null)));
    }

    /// <summary>ISO 8601 UTC with milliseconds, as JavaScript's <c>toISOString()</c> writes it.</summary>
    public static string Timestamp(TimeProvider time) =>
        time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
