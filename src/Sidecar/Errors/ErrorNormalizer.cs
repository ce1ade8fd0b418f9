using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sidecar.Errors;

/// <summary>
/// Brings an upstream error body to the contract's full shape (section 5) so that the browser
/// client can classify it, without changing the HTTP status or overwriting a field that is
/// already there. The client needs <c>type</c>, <c>error</c>, <c>message</c> and <c>statusCode</c>;
/// the rest helps it choose between a banner and a full-page error.
/// </summary>
internal static class ErrorNormalizer
{
    /// <summary>The normalised body, or null when the body is already complete and is best left byte for byte.</summary>
    public static byte[]? Normalize(int status, ReadOnlySpan<byte> body, ErrorNormalizationOptions options, string? requestId, string? sessionId, string timestamp)
    {
        JsonObject? error = null;
        if (!body.IsEmpty)
        {
            try
            {
                error = JsonNode.Parse(body) as JsonObject;

                // Materialised here: a duplicate key throws on first access, not at parse time.
                _ = error?.Count;
            }
            catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
            {
                error = null;
            }
        }

        if (error is null)
        {
            // Not a JSON object (an HTML crash page, an empty body): a typed error with the status kept.
            var fallback = options.Fallback;
            error = new JsonObject
            {
                ["type"] = FallbackType(status, options),
                ["error"] = "Upstream error",
                ["message"] = "Something went wrong. Please try again.",
                ["statusCode"] = status,
                ["errorCode"] = "UPSTREAM_ERROR_BODY",
            };
            AddMissing(error, fallback);
            AddMetadata(error, requestId, sessionId, timestamp);
            return Serialize(error);
        }

        var changed = false;
        ErrorMapping? mapping = null;
        if (!HasString(error, "type"))
        {
            // The billing guard's shape: classified by its code.
            mapping = String(error, "code") is { } code && options.Codes.TryGetValue(code, out var byCode) ? byCode : options.Fallback;
            error["type"] = mapping == options.Fallback ? FallbackType(status, options) : mapping.Type ?? FallbackType(status, options);
            changed = true;
        }
        else if (!HasString(error, "source"))
        {
            // Typed but without a source (the memory errors): completed from the types table. A
            // body with a type and a source (the guard's) is the full shape already.
            mapping = options.Types.TryGetValue(String(error, "type")!, out var byType) ? byType : options.Fallback;
        }

        changed |= SetIfMissing(error, "statusCode", status);
        changed |= SetIfMissing(error, "error", String(error, "message") ?? "Error");
        changed |= SetIfMissing(error, "message", String(error, "error") ?? "Something went wrong. Please try again.");
        var errorCode = String(error, "code") ?? (error["metadata"] is JsonObject metadata ? String(metadata, "errorCode") : null);
        if (errorCode is not null)
        {
            changed |= SetIfMissing(error, "errorCode", errorCode);
        }

        if (mapping is not null)
        {
            changed |= AddMissing(error, mapping);
        }

        changed |= AddMetadata(error, requestId, sessionId, timestamp);
        return changed ? Serialize(error) : null;
    }

    /// <summary>The type of a body that says none: by its HTTP status (a 429 from an ingress is a rate limit), else the fallback's.</summary>
    private static string FallbackType(int status, ErrorNormalizationOptions options) =>
        options.StatusTypes.TryGetValue(status, out var type) ? type : options.Fallback.Type ?? "SERVER_ERROR";

    private static bool AddMissing(JsonObject error, ErrorMapping mapping)
    {
        var changed = false;
        if (mapping.Source is { } source)
        {
            changed |= SetIfMissing(error, "source", source);
        }

        if (mapping.Category is { } category)
        {
            changed |= SetIfMissing(error, "category", category);
        }

        if (mapping.Severity is { } severity)
        {
            changed |= SetIfMissing(error, "severity", severity);
        }

        return changed;
    }

    private static bool AddMetadata(JsonObject error, string? requestId, string? sessionId, string timestamp)
    {
        if (error["metadata"] is not JsonObject metadata)
        {
            if (error.ContainsKey("metadata"))
            {
                // Something that is not an object: left as it is.
                return false;
            }

            metadata = [];
            error["metadata"] = metadata;
        }

        var changed = SetIfMissing(metadata, "timestamp", timestamp);
        if (requestId is not null)
        {
            changed |= SetIfMissing(metadata, "requestId", requestId);
        }

        if (sessionId is not null)
        {
            changed |= SetIfMissing(metadata, "sessionId", sessionId);
        }

        return changed;
    }

    private static bool SetIfMissing(JsonObject target, string name, JsonNode? value)
    {
        if (target.ContainsKey(name) && target[name] is not null)
        {
            return false;
        }

        target[name] = value;
        return true;
    }

    private static bool HasString(JsonObject error, string name) => String(error, name) is { Length: > 0 };

    private static string? String(JsonObject error, string name) =>
        error[name] is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static byte[] Serialize(JsonObject error) => System.Text.Encoding.UTF8.GetBytes(error.ToJsonString(Relaxed));
}
