using System.Buffers;

namespace Sidecar.Sse;

/// <summary>
/// One SSE event from the upstream: its exact bytes (forwarded and stored unchanged) and what the
/// sidecar parsed from them.
/// </summary>
internal sealed class SseEvent
{
    private SseEvent(byte[] raw, ReadOnlyMemory<byte> data, bool hasData, bool terminated, UiPart part)
    {
        Raw = raw;
        Data = data;
        HasData = hasData;
        IsTerminated = terminated;
        Part = part;
    }

    /// <summary>The event's bytes exactly as the upstream sent them, blank line included.</summary>
    public byte[] Raw { get; }

    /// <summary>The event's data: its <c>data</c> lines joined with LF, per the SSE rules.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>Whether the event has at least one <c>data</c> field (comments and blank lines have none).</summary>
    public bool HasData { get; }

    /// <summary>False for the last bytes of a body that ended without a blank line.</summary>
    public bool IsTerminated { get; }

    /// <summary>The UI message stream part this event carries, sniffed from its data.</summary>
    public UiPart Part { get; }

    /// <summary>The event's position in its stream, from 0 (its SSE <c>id</c>); -1 for the sidecar's own comments.</summary>
    public long Sequence { get; set; } = -1;

    /// <summary>The heartbeat comment the sidecar sends to quiet clients; never stored.</summary>
    public static readonly SseEvent Heartbeat = new(SseBytes.KeepAlive.ToArray(), default, hasData: false, terminated: true, UiPart.None);

    /// <summary>Copies an event's bytes out of the read buffer and parses the copy.</summary>
    public static SseEvent Parse(in ReadOnlySequence<byte> bytes, bool terminated)
    {
        var raw = bytes.ToArray();
        var (data, hasData) = ExtractData(raw);
        var part = hasData ? UiPart.Sniff(data.Span) : UiPart.None;
        return new SseEvent(raw, data, hasData, terminated, part);
    }

    /// <summary>The same event with the line break(s) that end it added (LF, as the upstream's framing allows).</summary>
    public static SseEvent Terminate(SseEvent fragment)
    {
        var raw = fragment.Raw;
        // Ending in a line break, one more makes the blank line: LF after LF (or CRLF), CR after a
        // CR alone (LF after it would only make it a CRLF, one line break).
        var ending = raw.Length == 0 ? "\n\n"u8 : raw[^1] == (byte)'\n' ? "\n"u8 : raw[^1] == (byte)'\r' ? "\r"u8 : "\n\n"u8;
        return Parse(new ReadOnlySequence<byte>([.. raw, .. ending]), terminated: true);
    }

    /// <summary>Collects the values of the <c>data</c> fields (SSE: one leading space dropped, joined by LF).</summary>
    private static (ReadOnlyMemory<byte> Data, bool HasData) ExtractData(byte[] raw)
    {
        ReadOnlyMemory<byte> single = default;
        List<ReadOnlyMemory<byte>>? many = null;
        var count = 0;
        var position = 0;
        while (position < raw.Length)
        {
            var rest = raw.AsSpan(position);
            var lineLength = rest.IndexOfAny(SseBytes.LineBreaks);
            if (lineLength < 0)
            {
                lineLength = rest.Length;
            }

            var line = rest[..lineLength];
            if (line.StartsWith("data"u8))
            {
                var valueStart = -1;
                if (line.Length == 4)
                {
                    valueStart = 4;
                }
                else if (line[4] == (byte)':')
                {
                    valueStart = line.Length > 5 && line[5] == (byte)' ' ? 6 : 5;
                }

                if (valueStart >= 0)
                {
                    var value = raw.AsMemory(position + valueStart, lineLength - valueStart);
                    if (count == 0)
                    {
                        single = value;
                    }
                    else
                    {
                        many ??= [single];
                        many.Add(value);
                    }

                    count++;
                }
            }

            position += lineLength;
            if (position < raw.Length)
            {
                position += raw[position] == (byte)'\r' && position + 1 < raw.Length && raw[position + 1] == (byte)'\n' ? 2 : 1;
            }
        }

        if (many is null)
        {
            return (single, count > 0);
        }

        var joined = new byte[many.Sum(m => m.Length) + many.Count - 1];
        var offset = 0;
        foreach (var piece in many)
        {
            if (offset > 0)
            {
                joined[offset++] = (byte)'\n';
            }

            piece.Span.CopyTo(joined.AsSpan(offset));
            offset += piece.Length;
        }

        return (joined, true);
    }
}
