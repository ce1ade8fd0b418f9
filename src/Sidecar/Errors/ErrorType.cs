using System.Net;

namespace Sidecar.Errors;

/// <summary>The error <c>type</c> values of the c010 contract (section 5).</summary>
internal enum ErrorType
{
    RateLimit,
    BotDetection,
    SecurityBlocked,
    ModelAccessDenied,
    UsageLimitExceeded,
    Authentication,
    InvalidModel,
    InvalidRequest,
    PayloadTooLarge,
    ServerError,
    Unknown,
    ServiceUnavailable,
    ModelUnavailable,
    Network,
    Timeout,
}

/// <summary>The one mapping of an <see cref="ErrorType"/> to its wire name and HTTP status.</summary>
internal static class ErrorTypes
{
    public static string WireName(this ErrorType type) => type switch
    {
        ErrorType.RateLimit => "RATE_LIMIT",
        ErrorType.BotDetection => "BOT_DETECTION",
        ErrorType.SecurityBlocked => "SECURITY_BLOCKED",
        ErrorType.ModelAccessDenied => "MODEL_ACCESS_DENIED",
        ErrorType.UsageLimitExceeded => "USAGE_LIMIT_EXCEEDED",
        ErrorType.Authentication => "AUTHENTICATION",
        ErrorType.InvalidModel => "INVALID_MODEL",
        ErrorType.InvalidRequest => "INVALID_REQUEST",
        ErrorType.PayloadTooLarge => "PAYLOAD_TOO_LARGE",
        ErrorType.ServerError => "SERVER_ERROR",
        ErrorType.Unknown => "UNKNOWN",
        ErrorType.ServiceUnavailable => "SERVICE_UNAVAILABLE",
        ErrorType.ModelUnavailable => "MODEL_UNAVAILABLE",
        ErrorType.Network => "NETWORK",
        ErrorType.Timeout => "TIMEOUT",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    public static int StatusCode(this ErrorType type) => type switch
    {
        ErrorType.RateLimit => (int)HttpStatusCode.TooManyRequests,
        ErrorType.BotDetection or ErrorType.SecurityBlocked or ErrorType.ModelAccessDenied or ErrorType.UsageLimitExceeded
            => (int)HttpStatusCode.Forbidden,
        ErrorType.Authentication => (int)HttpStatusCode.Unauthorized,
        ErrorType.InvalidModel or ErrorType.InvalidRequest => (int)HttpStatusCode.BadRequest,
        ErrorType.PayloadTooLarge => (int)HttpStatusCode.RequestEntityTooLarge,
        ErrorType.ServerError or ErrorType.Unknown => (int)HttpStatusCode.InternalServerError,
        ErrorType.ServiceUnavailable or ErrorType.ModelUnavailable or ErrorType.Network => (int)HttpStatusCode.ServiceUnavailable,
        ErrorType.Timeout => (int)HttpStatusCode.GatewayTimeout,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };
}
