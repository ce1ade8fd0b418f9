using System.Text.Json;

namespace Sidecar.Sse;

/// <summary>The part types of the UI message stream that the sidecar acts on.</summary>
internal enum UiPartType
{
    /// <summary>The event carries no data (a comment or a blank line).</summary>
    None,

    /// <summary>The <c>[DONE]</c> marker.</summary>
    Done,

    /// <summary>Data that is not a JSON object with a string <c>type</c>.</summary>
    Invalid,

    /// <summary>A valid part of a type the sidecar only forwards.</summary>
    Other,

    Start,
    Finish,
    Error,
    Abort,
    TextDelta,
    DataClear,
    DataFinish,
    DataPersistence,
}

/// <summary>The sniffed identity of one part: its type and, for <c>start</c>, the message id.</summary>
internal readonly record struct UiPart(UiPartType Type, string? MessageId = null)
{
    public static readonly UiPart None = new(UiPartType.None);

    /// <summary>
    /// Reads the top-level <c>type</c> (and <c>messageId</c> of a <c>start</c> part) from a part's JSON,
    /// checking that the whole part is well-formed JSON without materialising it.
    /// </summary>
    public static UiPart Sniff(ReadOnlySpan<byte> data)
    {
        if (data.SequenceEqual(SseBytes.Done))
        {
            return new UiPart(UiPartType.Done);
        }

        try
        {
            var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 256 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return new UiPart(UiPartType.Invalid);
            }

            UiPartType? type = null;
            string? messageId = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    if (!reader.Read() || reader.TokenType != JsonTokenType.String)
                    {
                        return new UiPart(UiPartType.Invalid);
                    }

                    type = Classify(ref reader);
                }
                else if (reader.ValueTextEquals("messageId"u8))
                {
                    reader.Read();
                    messageId = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            // The whole part is checked: the client's parser rejects truncated JSON, so must we.
            if (type is null || reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                return new UiPart(UiPartType.Invalid);
            }

            return new UiPart(type.Value, type == UiPartType.Start ? messageId : null);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a string the reader cannot unescape (a lone surrogate).
            return new UiPart(UiPartType.Invalid);
        }
    }

    /// <summary>
    /// Whether an <c>error</c> part is the service's resume error: its <c>errorText</c> is the
    /// contract's error shape with <c>category</c> <c>resume</c> (its own resume registration
    /// failed; the answer and its save are not in question).
    /// </summary>
    public static bool IsResumeError(ReadOnlyMemory<byte> data)
    {
        try
        {
            using var part = JsonDocument.Parse(data);
            if (part.RootElement.ValueKind != JsonValueKind.Object
                || !part.RootElement.TryGetProperty("errorText", out var text) || text.ValueKind != JsonValueKind.String)
            {
                return false;
            }

            using var error = JsonDocument.Parse(text.GetString()!);
            return error.RootElement.ValueKind == JsonValueKind.Object
                && error.RootElement.TryGetProperty("category", out var category)
                && category.ValueKind == JsonValueKind.String && category.ValueEquals("resume"u8);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: an errorText the reader cannot unescape (a lone surrogate).
            return false;
        }
    }

    // The part types the sidecar acts on, the most frequent first; every other type is Other.
    private static readonly (byte[] Name, UiPartType Type)[] KnownTypes =
    [
        ("text-delta"u8.ToArray(), UiPartType.TextDelta),
        ("start"u8.ToArray(), UiPartType.Start),
        ("finish"u8.ToArray(), UiPartType.Finish),
        ("error"u8.ToArray(), UiPartType.Error),
        ("abort"u8.ToArray(), UiPartType.Abort),
        ("data-clear"u8.ToArray(), UiPartType.DataClear),
        ("data-finish"u8.ToArray(), UiPartType.DataFinish),
        ("data-persistence"u8.ToArray(), UiPartType.DataPersistence),
    ];

    private static UiPartType Classify(ref Utf8JsonReader reader)
    {
        foreach (var (name, type) in KnownTypes)
        {
            if (reader.ValueTextEquals(name))
            {
                return type;
            }
        }

        return UiPartType.Other;
    }

    public override string ToString() => Type switch
    {
        UiPartType.Start => $"start({MessageId})",
        _ => Type.ToString(),
    };
}
