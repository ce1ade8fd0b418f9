using System.Buffers;

namespace Sidecar.Sse;

/// <summary>What <see cref="SseEventReader.TryRead"/> found in the buffer.</summary>
internal enum SseReadStatus
{
    /// <summary>No complete event yet: read more bytes and call again.</summary>
    NeedMoreData,

    /// <summary>One event was sliced off the front of the buffer.</summary>
    Event,

    /// <summary>The body ended inside an event: its bytes were sliced off, with no blank line after them.</summary>
    Fragment,

    /// <summary>The pending event grew past the size limit without ending.</summary>
    TooLarge,
}

/// <summary>
/// Incremental framing of a Server-Sent Events byte stream into events, one blank line apart.
/// </summary>
/// <remarks>
/// The reader only finds event boundaries; it never changes bytes. It copes with an event split
/// across any number of reads, with LF, CRLF and lone CR line endings (a CR at the end of a read
/// waits for the next byte to know whether an LF follows), and it resumes scanning where the
/// previous call stopped so that a large event arriving in many small reads costs linear time.
/// The buffer handed to <see cref="TryRead"/> must start where the previous event ended
/// (the usual <c>PipeReader.AdvanceTo(consumed, examined)</c> pattern).
/// </remarks>
internal sealed class SseEventReader
{
    private readonly long _maxEventBytes;

    // Offsets within the pending (not yet complete) event, kept across calls.
    private long _scanned;
    private long _lineStart;

    public SseEventReader(long maxEventBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEventBytes, 2);
        _maxEventBytes = maxEventBytes;
    }

    /// <summary>
    /// Slices the next complete event (its bytes up to and including the blank line that ends it)
    /// off the front of <paramref name="buffer"/>. When <paramref name="isFinalBlock"/> is true, the
    /// bytes left after the last complete event are returned as a <see cref="SseReadStatus.Fragment"/>.
    /// </summary>
    public SseReadStatus TryRead(ref ReadOnlySequence<byte> buffer, bool isFinalBlock, out ReadOnlySequence<byte> eventBytes)
    {
        eventBytes = default;
        if (buffer.IsEmpty)
        {
            return SseReadStatus.NeedMoreData;
        }

        var reader = new SequenceReader<byte>(buffer);
        reader.Advance(_scanned);
        while (reader.TryAdvanceToAny(SseBytes.LineBreaks, advancePastDelimiter: false))
        {
            var terminatorAt = reader.Consumed;
            reader.TryRead(out var first);
            if (first == (byte)'\r')
            {
                if (!reader.TryPeek(out var next))
                {
                    if (!isFinalBlock)
                    {
                        // A CR at the end of what we have: an LF may follow in the next read.
                        _scanned = terminatorAt;
                        return CheckSize(buffer.Length);
                    }
                }
                else if (next == (byte)'\n')
                {
                    reader.Advance(1);
                }
            }

            if (terminatorAt == _lineStart)
            {
                // An empty line: the event ends after its terminator.
                if (reader.Consumed > _maxEventBytes)
                {
                    return SseReadStatus.TooLarge;
                }

                eventBytes = buffer.Slice(0, reader.Consumed);
                buffer = buffer.Slice(reader.Consumed);
                _scanned = 0;
                _lineStart = 0;
                return SseReadStatus.Event;
            }

            _lineStart = reader.Consumed;
        }

        if (isFinalBlock)
        {
            // The body ended inside an event (no blank line after it): hand over what is there.
            if (buffer.Length > _maxEventBytes)
            {
                return SseReadStatus.TooLarge;
            }

            eventBytes = buffer;
            buffer = buffer.Slice(buffer.End);
            _scanned = 0;
            _lineStart = 0;
            return SseReadStatus.Fragment;
        }

        _scanned = buffer.Length;
        return CheckSize(buffer.Length);
    }

    private SseReadStatus CheckSize(long pending) =>
        pending > _maxEventBytes ? SseReadStatus.TooLarge : SseReadStatus.NeedMoreData;
}
