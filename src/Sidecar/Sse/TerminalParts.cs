using System.Buffers;
using System.Text.Json;
using Sidecar.Errors;

namespace Sidecar.Sse;

/// <summary>
/// The parts the sidecar writes itself to end a stream cleanly, exactly as the strict client
/// schema wants them: an <c>error</c> part whose <c>errorText</c> is the contract's error JSON, and
/// <c>[DONE]</c>.
/// </summary>
internal static class TerminalParts
{
    public static ReadOnlySpan<byte> Done => "data: [DONE]\n\n"u8;

    /// <summary><c>data: {"type":"error","errorText":"..."}</c> and its blank line.</summary>
    public static byte[] Error(ErrorBody body)
    {
        var errorText = JsonSerializer.Serialize(body, ErrorJsonContext.Relaxed.ErrorBody);
        var buffer = new ArrayBufferWriter<byte>(errorText.Length + 64);
        buffer.Write("data: "u8);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "error"u8);
            writer.WriteString("errorText"u8, errorText);
            writer.WriteEndObject();
        }

        buffer.Write("\n\n"u8);
        return buffer.WrittenSpan.ToArray();
    }
}
