using System.Buffers;
using System.Text;
using Sidecar.Sse;

namespace Sidecar.Tests.Sse;

public class SseEventWriterTests
{
    [Fact]
    public void Write_MixedSizesAndIds_WritesEachIdLineBeforeItsEventInOrder()
    {
        var big = "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"" + new string('x', 10_000) + "\"}\n\n";
        var events = new (long Sequence, string Raw)[]
        {
            (0, "data: {\"type\":\"start\"}\n\n"),
            (-1, ": keep-alive\n\n"),
            (1, big),
            (2, "data: {\"type\":\"finish\"}\n\n"),
            (long.MaxValue, "data: [DONE]\n\n"),
        };
        var target = new SmallSpanWriter(spanLength: 64);

        WriteAll(target, events);

        Assert.Equal(OnTheWire(events), target.Text);
    }

    [Fact]
    public void Write_SmallEvents_ShareOneBufferUntilItIsFull()
    {
        var raw = "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"" + new string('x', 60) + "\"}\n\n";
        var events = Enumerable.Range(0, 30).Select(i => ((long)i, raw)).ToArray();
        var target = new SmallSpanWriter(spanLength: 4096);

        WriteAll(target, events);

        // 30 events of about 110 bytes with their id lines fit one 4 KiB buffer: one span, one advance.
        Assert.Equal(1, target.Spans);
        Assert.Equal(OnTheWire(events), target.Text);
    }

    [Fact]
    public void Write_EventsThatExactlyFillABuffer_TheNextOneStartsANewBuffer()
    {
        var events = Enumerable.Repeat((-1L, "data: " + new string('x', 1016) + "\n\n"), 5).ToArray();
        var target = new SmallSpanWriter(spanLength: 4096);

        WriteAll(target, events);

        Assert.Equal(2, target.Spans);
        Assert.Equal(OnTheWire(events), target.Text);
    }

    [Fact]
    public void Write_WriterGivesLessThanAsked_EventsStillGoOutWhole()
    {
        var events = new (long Sequence, string Raw)[]
        {
            (7, "data: {\"type\":\"start\"}\n\n"),
            (-1, ": keep-alive\n\n"),
            (123_456_789_012, "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"" + new string('y', 900) + "\"}\n\n"),
        };
        var target = new SmallSpanWriter(spanLength: 16, honourSizeHint: false);

        WriteAll(target, events);

        Assert.Equal(OnTheWire(events), target.Text);
    }

    [Fact]
    public void Commit_WithNothingWritten_AdvancesNothing()
    {
        var target = new SmallSpanWriter(spanLength: 64);

        new SseEventWriter(target).Commit();

        Assert.Equal(0, target.Spans);
        Assert.Equal(string.Empty, target.Text);
    }

    /// <summary>Writes the events through one <see cref="SseEventWriter"/>, then commits.</summary>
    private static void WriteAll(IBufferWriter<byte> target, IEnumerable<(long Sequence, string Raw)> events)
    {
        var output = new SseEventWriter(target);
        foreach (var (sequence, raw) in events)
        {
            output.Write(sequence, Encoding.UTF8.GetBytes(raw));
        }

        output.Commit();
    }

    /// <summary>The events as the client must read them: each one's <c>id:</c> line (when it has an id) before its bytes.</summary>
    private static string OnTheWire(IEnumerable<(long Sequence, string Raw)> events) =>
        string.Concat(events.Select(e => (e.Sequence >= 0 ? $"id: {e.Sequence}\n" : string.Empty) + e.Raw));

    /// <summary>
    /// Hands out spans of a fixed length (or the size asked, if larger and honoured) and checks each
    /// advance against it.
    /// </summary>
    private sealed class SmallSpanWriter(int spanLength, bool honourSizeHint = true) : IBufferWriter<byte>
    {
        private readonly List<byte> _written = [];
        private byte[] _current = [];

        public int Spans { get; private set; }

        public string Text => Encoding.UTF8.GetString([.. _written]);

        public Span<byte> GetSpan(int sizeHint = 0)
        {
            Spans++;
            _current = new byte[honourSizeHint ? Math.Max(spanLength, sizeHint) : spanLength];
            return _current;
        }

        public Memory<byte> GetMemory(int sizeHint = 0)
        {
            Spans++;
            _current = new byte[honourSizeHint ? Math.Max(spanLength, sizeHint) : spanLength];
            return _current;
        }

        public void Advance(int count)
        {
            Assert.InRange(count, 0, _current.Length);
            _written.AddRange(_current.AsSpan(0, count).ToArray());
            _current = [];
        }
    }
}
