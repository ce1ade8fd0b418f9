using System.Buffers;
using System.Globalization;

namespace Sidecar.Sse;

/// <summary>Writes the SSE lines the sidecar adds to the upstream's events.</summary>
internal static class SseWriter
{
    /// <summary>Writes <c>id: N</c> and a line feed: the line that precedes an event's own bytes.</summary>
    public static void WriteId(IBufferWriter<byte> writer, long sequence)
    {
        Span<byte> line = stackalloc byte[IdLineRoom];
        writer.Write(line[..WriteId(line, sequence)]);
    }

    /// <summary>Room enough for an <c>id:</c> line: "id: ", a long and a line feed.</summary>
    public const int IdLineRoom = 32;

    /// <summary>Writes <c>id: N</c> and a line feed into <paramref name="line"/> (at least <see cref="IdLineRoom"/> bytes); returns its length.</summary>
    public static int WriteId(Span<byte> line, long sequence)
    {
        "id: "u8.CopyTo(line);
        if (!sequence.TryFormat(line[4..^1], out var written, provider: CultureInfo.InvariantCulture))
        {
            throw new ArgumentException($"An id line needs up to {IdLineRoom} bytes.", nameof(line));
        }

        line[4 + written] = (byte)'\n';
        return 5 + written;
    }
}
