using System.Buffers;
using System.Text;
using System.Text.Json;

namespace ChatUpstream;

/// <summary>
/// Builds UI message stream parts exactly as the AI SDK v5 writes them: <c>type</c> first, only the
/// fields its strict client schema allows.
/// </summary>
public static class Parts
{
    public static string Start(string messageId) => Write(w => { w.WriteString("type", "start"); w.WriteString("messageId", messageId); });
    public static string StartStep() => Write(w => w.WriteString("type", "start-step"));
    public static string FinishStep() => Write(w => w.WriteString("type", "finish-step"));
    public static string Finish() => Write(w => w.WriteString("type", "finish"));
    public static string Block(string type, string id) => Write(w => { w.WriteString("type", type); w.WriteString("id", id); });

    public static string Delta(string type, string id, string delta) =>
        Write(w => { w.WriteString("type", type); w.WriteString("id", id); w.WriteString("delta", delta); });

    public static string ToolInputStart(string callId, string tool) =>
        Write(w => { w.WriteString("type", "tool-input-start"); w.WriteString("toolCallId", callId); w.WriteString("toolName", tool); });

    public static string ToolInputDelta(string callId, string delta) =>
        Write(w => { w.WriteString("type", "tool-input-delta"); w.WriteString("toolCallId", callId); w.WriteString("inputTextDelta", delta); });

    public static string ToolInputAvailable(string callId, string tool, string inputJson) => Write(w =>
    {
        w.WriteString("type", "tool-input-available");
        w.WriteString("toolCallId", callId);
        w.WriteString("toolName", tool);
        w.WritePropertyName("input");
        w.WriteRawValue(inputJson);
    });

    public static string ToolOutputAvailable(string callId, string outputJson) => Write(w =>
    {
        w.WriteString("type", "tool-output-available");
        w.WriteString("toolCallId", callId);
        w.WritePropertyName("output");
        w.WriteRawValue(outputJson);
    });

    /// <summary>A transient custom data part: <c>{"type":"data-&lt;name&gt;","data":…,"transient":true}</c>.</summary>
    public static string Data(string name, string dataJson) => Write(w =>
    {
        w.WriteString("type", "data-" + name);
        w.WritePropertyName("data");
        w.WriteRawValue(dataJson);
        w.WriteBoolean("transient", true);
    });

    public static string Error(string errorTextJson) => Write(w => { w.WriteString("type", "error"); w.WriteString("errorText", errorTextJson); });

    public static string JsonString(string value) => JsonSerializer.Serialize(value);

    internal static string Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
