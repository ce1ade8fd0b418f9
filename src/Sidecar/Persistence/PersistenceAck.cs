using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sidecar.Persistence;

/// <summary>Whether an answer was saved.</summary>
internal enum AckStatus
{
    Saved,
    Failed,
}

/// <summary>One acknowledgment: saved or failed, where it came from, and the service's error text if any.</summary>
internal sealed record PersistenceAck(AckStatus Status, string Source, string? Error = null)
{
    /// <summary>The longest error text kept from an acknowledgment.</summary>
    public const int MaxErrorLength = 1000;

    /// <summary>
    /// Reads <c>{"status":"saved"|"failed","error":"…"?}</c> (a callback's body, or the <c>data</c> of an
    /// in-band part with its <c>messageId</c>); null when it is not that shape.
    /// </summary>
    public static PersistenceAck? Parse(ReadOnlySpan<byte> json, string source, out string? messageId)
    {
        messageId = null;
        try
        {
            var body = JsonSerializer.Deserialize(json, PersistenceJsonContext.Default.AckBody);
            if (body is null || body.Error is { Length: > MaxErrorLength })
            {
                return null;
            }

            messageId = body.MessageId;
            return body.Status switch
            {
                "saved" => new PersistenceAck(AckStatus.Saved, source, body.Error),
                "failed" => new PersistenceAck(AckStatus.Failed, source, body.Error),
                _ => null,
            };
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The JSON form, as callbacks send it and replicas pass it on.</summary>
    public string ToJson() => JsonSerializer.Serialize(
        new AckBody(Status == AckStatus.Saved ? "saved" : "failed", Error, null), PersistenceJsonContext.Default.AckBody);

    /// <summary>Reads an in-band <c>data-persistence</c> part: its <c>data</c> object.</summary>
    public static PersistenceAck? ParseInBand(ReadOnlySpan<byte> part, out string? messageId)
    {
        messageId = null;
        try
        {
            using var document = JsonDocument.Parse(part.ToArray());
            return document.RootElement.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object
                ? Parse(JsonSerializer.SerializeToUtf8Bytes(data, PersistenceJsonContext.Default.JsonElement), "in_band", out messageId)
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

internal sealed record AckBody(
    [property: JsonPropertyName("status")] string? Status,
    [property: JsonPropertyName("error")] string? Error,
    [property: JsonPropertyName("messageId")] string? MessageId);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AckBody))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class PersistenceJsonContext : JsonSerializerContext;
