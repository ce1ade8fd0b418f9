namespace ChatUpstream;

/// <summary>
/// The error bodies the c010 service sends today (contract section 5): A guard errors (full shape),
/// B memory errors (no source/category/severity, errorCode inside metadata), C billing guard
/// (no type, no statusCode), and the errorText of D, the SSE error parts.
/// </summary>
public static class ErrorShapes
{
    private static readonly Dictionary<string, (int Status, Func<RequestInfo, string> Body)> Kinds = new()
    {
        // A: guard errors, full shape.
        ["rate-limit"] = (429, r => Guard(r, "RATE_LIMIT", "Rate limit exceeded", "Too many requests. Please wait a moment and try again.", 429, "RATE_LIMIT_EXCEEDED")),
        ["bot"] = (403, r => Guard(r, "BOT_DETECTION", "Bot detected", "Automated traffic is not allowed.", 403, "BOT_DETECTED")),
        ["security"] = (403, r => Guard(r, "SECURITY_BLOCKED", "Request blocked", "This request was blocked for security reasons.", 403, "SECURITY_BLOCKED")),
        ["model-access"] = (403, r => Guard(r, "MODEL_ACCESS_DENIED", "Model access denied", "Your plan does not include this model.", 403, "MODEL_ACCESS_DENIED")),
        ["usage-limit"] = (403, r => Guard(r, "USAGE_LIMIT_EXCEEDED", "Usage limit exceeded", "You have used all your messages for this period.", 403, "USAGE_LIMIT_EXCEEDED")),
        ["auth"] = (401, r => Guard(r, "AUTHENTICATION", "Authentication required", "Please sign in to use this model.", 401, "AUTH_REQUIRED")),
        ["invalid-model"] = (400, r => Guard(r, "INVALID_MODEL", "Invalid model", "The requested model does not exist.", 400, "INVALID_MODEL")),
        // B: memory errors.
        ["session"] = (400, r => Memory(r, "INVALID_REQUEST", "SessionCreationError", "Failed to create session", 400, "SESSION_CREATION_FAILED")),
        ["message"] = (400, r => Memory(r, "INVALID_REQUEST", "MessageOperationError", "Failed to append message", 400, "MESSAGE_OPERATION_FAILED")),
        ["memory"] = (500, r => Memory(r, "SERVER_ERROR", "MemoryError", "Memory store unavailable", 500, "MEMORY_ERROR")),
        // C: billing guard.
        ["quota"] = (402, r => Billing("Usage limit exceeded", "You have reached your message limit for this period.", "QUOTA_RESERVATION_ERROR", r)),
        ["model-not-allowed"] = (403, r => Billing("Model not allowed", "Your plan does not include this model.", "MODEL_NOT_ALLOWED", r)),
        ["feature-not-allowed"] = (403, r => Billing("Feature not allowed", "Web search is not included in your plan.", "FEATURE_NOT_ALLOWED", r)),
        ["internal"] = (500, r => Billing("Internal error", "Something went wrong while checking your usage.", "INTERNAL_ERROR", r)),
        // Not the route's own: what a crash or a proxy in front would answer.
        ["html"] = (500, _ => "<!DOCTYPE html><html><head><title>500: Internal Server Error</title></head><body><h1>500</h1><p>Internal Server Error.</p></body></html>"),
        ["empty"] = (502, _ => string.Empty),
        ["gzip"] = (500, r => Billing("Internal error", "Something went wrong while checking your usage.", "INTERNAL_ERROR", r)),
        ["huge"] = (500, r => Billing("Internal error", new string('x', 100_000), "INTERNAL_ERROR", r)),
    };

    public static bool IsKnown(string kind) => Kinds.ContainsKey(kind);

    public static IEnumerable<string> All => Kinds.Keys;

    /// <summary>The content type of a kind's body.</summary>
    public static string ContentType(string kind) => kind switch
    {
        "html" => "text/html; charset=utf-8",
        "empty" => "text/plain",
        _ => "application/json",
    };

    public static (int Status, string Body) Create(string kind, RequestInfo request)
    {
        var (status, body) = Kinds[kind];
        return (status, body(request));
    }

    /// <summary>Shape A, also used for the route's own validation errors.</summary>
    public static string Guard(RequestInfo r, string type, string error, string message, int status, string errorCode) => Parts.Write(w =>
    {
        w.WriteString("type", type);
        w.WriteString("error", error);
        w.WriteString("message", message);
        w.WriteNumber("statusCode", status);
        w.WriteString("errorCode", errorCode);
        w.WriteString("source", "guard");
        w.WriteStartObject("metadata");
        w.WriteString("timestamp", r.Timestamp);
        w.WriteString("requestId", r.RequestId);
        w.WriteString("sessionId", r.SessionId);
        w.WriteEndObject();
    });

    private static string Memory(RequestInfo r, string type, string error, string message, int status, string errorCode) => Parts.Write(w =>
    {
        w.WriteString("type", type);
        w.WriteString("error", error);
        w.WriteString("message", message);
        w.WriteNumber("statusCode", status);
        w.WriteStartObject("metadata");
        w.WriteString("timestamp", r.Timestamp);
        w.WriteString("errorCode", errorCode);
        w.WriteString("sessionId", r.SessionId);
        w.WriteString("resourceId", r.ResourceId);
        w.WriteEndObject();
    });

    private static string Billing(string error, string message, string code, RequestInfo r) => Parts.Write(w =>
    {
        w.WriteString("error", error);
        w.WriteString("message", message);
        w.WriteString("code", code);
        w.WriteStartObject("details");
        w.WriteString("userId", r.ResourceId);
        w.WriteEndObject();
    });

    /// <summary>D: the errorText of an SSE error part.</summary>
    public static string StreamErrorText(RequestInfo r, string messageId, string category, string message) => Parts.Write(w =>
    {
        w.WriteString("type", "SERVER_ERROR");
        w.WriteString("error", category == "stream" ? "Stream error" : category == "persistence" ? "Persistence error" : "Resume error");
        w.WriteString("message", message);
        w.WriteNumber("statusCode", 500);
        w.WriteString("source", "server");
        w.WriteString("category", category);
        w.WriteString("severity", "recoverable");
        w.WriteStartObject("metadata");
        w.WriteString("timestamp", r.Timestamp);
        w.WriteString("requestId", r.RequestId);
        w.WriteString("sessionId", r.SessionId);
        w.WriteString("messageId", messageId);
        w.WriteEndObject();
    });
}

/// <summary>What an error body needs to know of its request.</summary>
public sealed record RequestInfo(string RequestId, string SessionId, string ResourceId, string Timestamp);
