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
}

/// <summary>Builds <see cref="ErrorBody"/> values for <see cref="SidecarError"/>s.</summary>
internal static class SidecarErrors
{
    public const string Source = "sidecar";

    public static ErrorBody Create(SidecarError error, TimeProvider time, string? requestId, string? sessionId = null)
    {
        var (type, title, message, code) = error switch
        {
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
            type.StatusCode(),
            code,
            Source,
            Category: null,
            Severity: "recoverable",
            new ErrorMetadata(Timestamp(time), requestId, sessionId));
    }

    /// <summary>ISO 8601 UTC with milliseconds, as JavaScript's <c>toISOString()</c> writes it.</summary>
    public static string Timestamp(TimeProvider time) =>
        time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
