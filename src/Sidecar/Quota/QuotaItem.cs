using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sidecar.Quota;

/// <summary>What a reservation needs.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<QuotaAction>))]
public enum QuotaAction
{
    /// <summary>The answer completed and was saved: the user pays for it.</summary>
    Confirm,

    /// <summary>The answer failed (or was stopped): the quota goes back to the user.</summary>
    Release,

    /// <summary>The answer's save failed: submit the rebuilt message again (save repair).</summary>
    Save,
}

/// <summary>One settlement in the outbox: a reservation and what it needs, and how often it was tried.</summary>
public sealed record QuotaItem(
    [property: JsonPropertyName("id")] string MessageId,
    [property: JsonPropertyName("action")] QuotaAction Action,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("sessionId")] string? SessionId,
    [property: JsonPropertyName("enqueuedAt")] long EnqueuedAtMs,
    [property: JsonPropertyName("attempts")] int Attempts = 0,
    [property: JsonPropertyName("payload")] string? Payload = null)
{
    /// <summary>The item's key in the outbox: one settlement and one save repair per message (ids may hold ':').</summary>
    [JsonIgnore]
    public string Key => Action == QuotaAction.Save ? SaveKey(MessageId) : SettlementKey(MessageId);

    public static string SettlementKey(string messageId) => "settle:" + messageId;

    public static string SaveKey(string messageId) => "save:" + messageId;

    public string ToJson() => JsonSerializer.Serialize(this, QuotaJsonContext.Default.QuotaItem);

    public static QuotaItem? FromJson(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, QuotaJsonContext.Default.QuotaItem);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>One entry of the quota API's list.</summary>
internal sealed record ReservationEntry(
    [property: JsonPropertyName("id")] string? Id,
    [property: JsonPropertyName("status")] string? Status,
    [property: JsonPropertyName("createdAt")] long CreatedAt);

internal sealed record ReservationStatus([property: JsonPropertyName("status")] string? Status);

[JsonSerializable(typeof(QuotaItem))]
[JsonSerializable(typeof(ReservationEntry[]))]
[JsonSerializable(typeof(ReservationStatus))]
internal sealed partial class QuotaJsonContext : JsonSerializerContext;
