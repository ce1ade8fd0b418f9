using System.Text.Json;
using System.Text.Json.Nodes;
using Sidecar.Sse;

namespace Sidecar.Persistence;

/// <summary>
/// Rebuilds the assistant message from its UI-message-stream parts the way the AI SDK v5 client
/// does (<c>processUIMessageStream</c>): the <c>UIMessage</c> shape (<c>id</c>, <c>role</c>,
/// <c>parts</c>, <c>metadata</c>) the service saves. Parts after the first <c>error</c> are not read
/// (the client stops there); transient data parts are not part of the message.
/// </summary>
/// <remarks>
/// One difference: a tool input still streaming when the answer broke off stays without
/// <c>input</c> (the client parses partial JSON there).
/// </remarks>
internal sealed class UiMessageBuilder(string? messageId)
{
    private readonly JsonArray _parts = [];
    private readonly Dictionary<string, JsonObject> _activeText = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _activeReasoning = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _toolInputText = new(StringComparer.Ordinal);
    private JsonNode? _metadata;
    private string? _id = messageId;
    private bool _stopped;

    /// <summary>Takes the next event of the stream (comments, [DONE] and invalid parts are skipped).</summary>
    public void Observe(SseEvent evt)
    {
        if (_stopped || !evt.HasData || evt.Part.Type is UiPartType.None or UiPartType.Done or UiPartType.Invalid)
        {
            return;
        }

        JsonObject chunk;
        try
        {
            if (JsonNode.Parse(evt.Data.Span) is not JsonObject parsed)
            {
                return;
            }

            chunk = parsed;
        }
        catch (JsonException)
        {
            return;
        }

        Apply(chunk);
    }

    /// <summary>The message so far, as JSON.</summary>
    public JsonObject Build()
    {
        var message = new JsonObject
        {
            ["id"] = _id ?? string.Empty,
            ["role"] = "assistant",
            ["parts"] = _parts.DeepClone(),
        };
        if (_metadata is not null)
        {
            message["metadata"] = _metadata.DeepClone();
        }

        return message;
    }

    private void Apply(JsonObject chunk)
    {
        var type = (string?)chunk["type"];
        var id = chunk["id"] is JsonValue idValue && idValue.GetValueKind() == JsonValueKind.String ? (string?)idValue : null;
        switch (type)
        {
            case "text-start" or "reasoning-start":
                var block = new JsonObject { ["type"] = type == "text-start" ? "text" : "reasoning", ["text"] = string.Empty };
                Copy(chunk, block, "providerMetadata");
                block["state"] = "streaming";
                (type == "text-start" ? _activeText : _activeReasoning)[id ?? string.Empty] = block;
                _parts.Add(block);
                break;
            case "text-delta" or "reasoning-delta":
                if ((type == "text-delta" ? _activeText : _activeReasoning).TryGetValue(id ?? string.Empty, out var open))
                {
                    open["text"] = (string?)open["text"] + (string?)chunk["delta"];
                    Copy(chunk, open, "providerMetadata");
                }

                break;
            case "text-end" or "reasoning-end":
                var active = type == "text-end" ? _activeText : _activeReasoning;
                if (active.Remove(id ?? string.Empty, out var ended))
                {
                    ended["state"] = "done";
                    Copy(chunk, ended, "providerMetadata");
                }

                break;
            case "file":
                _parts.Add(new JsonObject { ["type"] = "file", ["mediaType"] = chunk["mediaType"]?.DeepClone(), ["url"] = chunk["url"]?.DeepClone() });
                break;
            case "source-url" or "source-document":
                var source = new JsonObject { ["type"] = type };
                foreach (var name in type == "source-url" ? new[] { "sourceId", "url", "title", "providerMetadata" } : ["sourceId", "mediaType", "title", "filename", "providerMetadata"])
                {
                    Copy(chunk, source, name);
                }

                _parts.Add(source);
                break;
            case "tool-input-start":
                _toolInputText[(string?)chunk["toolCallId"] ?? string.Empty] = string.Empty;
                UpdateTool(chunk, "input-streaming", input: null);
                break;
            case "tool-input-delta":
                var callId = (string?)chunk["toolCallId"] ?? string.Empty;
                var text = _toolInputText.GetValueOrDefault(callId) + (string?)chunk["inputTextDelta"];
                _toolInputText[callId] = text;
                UpdateTool(chunk, "input-streaming", TryParse(text));
                break;
            case "tool-input-available":
                UpdateTool(chunk, "input-available", chunk["input"]?.DeepClone(), providerMetadata: chunk["providerMetadata"]);
                break;
            case "tool-input-error":
                UpdateTool(chunk, "output-error", input: null, rawInput: chunk["input"]?.DeepClone(), errorText: chunk["errorText"]?.DeepClone());
                break;
            case "tool-output-available":
                if (FindTool((string?)chunk["toolCallId"]) is { } withOutput)
                {
                    UpdateTool(chunk, "output-available", withOutput["input"]?.DeepClone(), output: chunk["output"]?.DeepClone(), preliminary: chunk["preliminary"]?.DeepClone());
                }

                break;
            case "tool-output-error":
                if (FindTool((string?)chunk["toolCallId"]) is { } failed)
                {
                    UpdateTool(chunk, "output-error", failed["input"]?.DeepClone(), rawInput: failed["rawInput"]?.DeepClone(), errorText: chunk["errorText"]?.DeepClone());
                }

                break;
            case "start-step":
                _parts.Add(new JsonObject { ["type"] = "step-start" });
                break;
            case "finish-step":
                _activeText.Clear();
                _activeReasoning.Clear();
                break;
            case "start":
                _id = (string?)chunk["messageId"] ?? _id;
                MergeMetadata(chunk["messageMetadata"]);
                break;
            case "finish" or "message-metadata":
                MergeMetadata(chunk["messageMetadata"]);
                break;
            case "error":
                // The client stops reading at its first error part.
                _stopped = true;
                break;
            case not null when type.StartsWith("data-", StringComparison.Ordinal):
                if (chunk["transient"] is JsonValue transient && transient.GetValueKind() == JsonValueKind.True)
                {
                    break;
                }

                var existing = id is null ? null : _parts.OfType<JsonObject>().FirstOrDefault(p => (string?)p["type"] == type && p["id"] is JsonValue v && (string?)v == id);
                if (existing is not null)
                {
                    existing["data"] = chunk["data"]?.DeepClone();
                }
                else
                {
                    _parts.Add(chunk.DeepClone());
                }

                break;
        }
    }

    private JsonObject? FindTool(string? toolCallId) =>
        _parts.OfType<JsonObject>().FirstOrDefault(p => ((string?)p["type"])?.StartsWith("tool-", StringComparison.Ordinal) == true || (string?)p["type"] == "dynamic-tool"
            ? (string?)p["toolCallId"] == toolCallId
            : false);

    private void UpdateTool(JsonObject chunk, string state, JsonNode? input, JsonNode? output = null, JsonNode? rawInput = null, JsonNode? errorText = null, JsonNode? preliminary = null, JsonNode? providerMetadata = null)
    {
        var toolCallId = (string?)chunk["toolCallId"];
        var part = FindTool(toolCallId);
        if (part is null)
        {
            var dynamic = chunk["dynamic"] is JsonValue d && d.GetValueKind() == JsonValueKind.True;
            part = dynamic
                ? new JsonObject { ["type"] = "dynamic-tool", ["toolName"] = chunk["toolName"]?.DeepClone(), ["toolCallId"] = toolCallId }
                : new JsonObject { ["type"] = "tool-" + (string?)chunk["toolName"], ["toolCallId"] = toolCallId };
            _parts.Add(part);
        }

        part["state"] = state;
        Set(part, "input", input);
        Set(part, "output", output);
        Set(part, "rawInput", rawInput);
        Set(part, "errorText", errorText);
        Set(part, "preliminary", preliminary);
        if (chunk["providerExecuted"] is { } executed)
        {
            part["providerExecuted"] = executed.DeepClone();
        }

        if (providerMetadata is not null && state == "input-available")
        {
            part["callProviderMetadata"] = providerMetadata.DeepClone();
        }
    }

    private void MergeMetadata(JsonNode? metadata)
    {
        if (metadata is null)
        {
            return;
        }

        _metadata = Merge(_metadata, metadata);
    }

    /// <summary>The SDK's <c>mergeObjects</c>: objects merge key by key, recursively; anything else is replaced.</summary>
    private static JsonNode? Merge(JsonNode? current, JsonNode update)
    {
        if (current is not JsonObject target || update is not JsonObject source)
        {
            return update.DeepClone();
        }

        var merged = (JsonObject)target.DeepClone();
        foreach (var (name, value) in source)
        {
            merged[name] = value is null ? null : Merge(merged[name], value);
        }

        return merged;
    }

    /// <summary>Sets a field, or removes it for null (the client's <c>undefined</c>, which JSON leaves out).</summary>
    private static void Set(JsonObject target, string name, JsonNode? value)
    {
        if (value is null)
        {
            target.Remove(name);
        }
        else
        {
            target[name] = value;
        }
    }

    private static void Copy(JsonObject from, JsonObject to, string name)
    {
        if (from[name] is { } value)
        {
            to[name] = value.DeepClone();
        }
    }

    private static JsonNode? TryParse(string json)
    {
        try
        {
            return JsonNode.Parse(json);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
