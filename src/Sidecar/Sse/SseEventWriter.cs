using System.Buffers;

namespace Sidecar.Sse;

/// <summary>
/// Copies events (each with its <c>id:</c> line when asked) into a writer a buffer at a time: one
/// <c>GetSpan</c>/<c>Advance</c> pair per buffer rather than two per event (Kestrel's response
/// writer takes a lock in each). <see cref="Commit"/> before the writer is flushed.
/// </summary>
internal ref struct SseEventWriter(IBufferWriter<byte> writer)
{
    /// <summary>Events larger than this are written straight through, not gathered in one buffer.</summary>
    private const int GatherLimit = 4096;

    private Span<byte> _span;
    private int _used;

    /// <summary>Writes <c>id: N</c> and a line feed when <paramref name="sequence"/> is not negative, then the event's bytes.</summary>
    public void Write(long sequence, ReadOnlySpan<byte> raw)
    {
        var room = raw.Length + (sequence >= 0 ? SseWriter.IdLineRoom : 0);
        if (_span.Length - _used < room)
        {
            Commit();
            if (room <= GatherLimit)
            {
                _span = writer.GetSpan(room);
            }

            if (_span.Length < room)
            {
                // Larger than a buffer gathers (or a writer that gave less than asked): straight through.
                _span = default;
                if (sequence >= 0)
                {
                    SseWriter.WriteId(writer, sequence);
                }

                writer.Write(raw);
                return;
            }
        }

        if (sequence >= 0)
        {
            _used += SseWriter.WriteId(_span[_used..], sequence);
        }

        raw.CopyTo(_span[_used..]);
        _used += raw.Length;
    }

    /// <summary>Hands what was copied to the writer (before a flush).</summary>
    public void Commit()
    {
        if (_used > 0)
        {
            writer.Advance(_used);
        }

        _span = default;
        _used = 0;
    }
}
