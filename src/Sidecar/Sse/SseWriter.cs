using System.Buffers;
using System.Globalization;

namespace Sidecar.Sse;

/// <summary>Writes the SSE lines the sidecar adds to the upstream's events.</summary>
internal static class SseWriter
{
    /// <summary>Writes <c>id: N</c> and a line feed: the line that precedes an event's own bytes.</summary>
    public static void WriteId(IBufferWriter<byte> writer, long sequence)
    {
        var line = writer.GetSpan(32);
        "id: "u8.CopyTo(line);
        sequence.TryFormat(line[4..], out var written, provider: CultureInfo.InvariantCulture);
        line[4 + written] = (byte)'\n';
        writer.Advance(5 + written);
    }
}
