using System.Text.Json.Serialization;

namespace Sidecar.Errors;

/// <summary>
/// The full error shape the browser client expects (contract section 5), used for JSON error
/// bodies and for the <c>errorText</c> of SSE <c>error</c> parts.
/// </summary>
internal sealed record ErrorBody(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("error")] string Error,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("statusCode")] int StatusCode,
    [property: JsonPropertyName("errorCode")] string? ErrorCode,
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("category")] string? Category,
    [property: JsonPropertyName("severity")] string? Severity,
    [property: JsonPropertyName("metadata")] ErrorMetadata Metadata);

/// <summary>The <c>metadata</c> of an <see cref="ErrorBody"/>.</summary>
internal sealed record ErrorMetadata(
    [property: JsonPropertyName("timestamp")] string Timestamp,
    [property: JsonPropertyName("requestId")] string? RequestId = null,
    [property: JsonPropertyName("sessionId")] string? SessionId = null,
    [property: JsonPropertyName("messageId")] string? MessageId = null,
    [property: JsonPropertyName("reason")] string? Reason = null);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(string))]
internal sealed partial class ErrorJsonContext : JsonSerializerContext
{
    /// <summary>
    /// Escapes only what JSON requires (quotes as <c>\"</c>, not <c>\u0022</c>), as the service's
    /// own error JSON does: these bodies and parts are never embedded in HTML.
    /// </summary>
    public static ErrorJsonContext Relaxed { get; } = new(new System.Text.Json.JsonSerializerOptions
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
