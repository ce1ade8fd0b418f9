using System.Text;
using Sidecar.Sse;

namespace Sidecar.Tests.Sse;

public class SseEventReaderTests
{
    // Every framing feature at once: LF, CRLF and lone-CR line endings, a comment, multi-line data,
    // id/event/retry fields, a leading blank line, an empty data line, and a final unterminated event.
    private const string Mixed =
        "\n" +
        "data: {\"type\":\"start\",\"messageId\":\"m1\"}\n\n" +
        ": keep-alive\n\n" +
        "data: {\"type\":\"text-start\",\r\ndata: \"id\":\"t\"}\r\n\r\n" +
        "id: 7\revent: message\rdata: {\"type\":\"finish\"}\r\r" +
        "retry: 1000\ndata\n\n" +
        "data: [DONE]\n";

    private static readonly string[] MixedEvents =
    [
        "\n",
        "data: {\"type\":\"start\",\"messageId\":\"m1\"}\n\n",
        ": keep-alive\n\n",
        "data: {\"type\":\"text-start\",\r\ndata: \"id\":\"t\"}\r\n\r\n",
        "id: 7\revent: message\rdata: {\"type\":\"finish\"}\r\r",
        "retry: 1000\ndata\n\n",
        "data: [DONE]\n",
    ];

    [Fact]
    public async Task TryRead_WholeStreamInOneRead_SplitsAtBlankLines()
    {
        var (events, tooLarge) = await SseFraming.FrameAsync(Encoding.UTF8.GetBytes(Mixed), []);

        Assert.False(tooLarge);
        Assert.Equal(MixedEvents, events.Select(e => Encoding.UTF8.GetString(e.Raw)));
        Assert.All(events[..^1], e => Assert.Equal(SseReadStatus.Event, e.Status));
        Assert.Equal(SseReadStatus.Fragment, events[^1].Status);
    }

    [Fact]
    public async Task TryRead_EverySingleSplitPoint_YieldsTheSameEvents()
    {
        var input = Encoding.UTF8.GetBytes(Mixed);
        for (var split = 1; split < input.Length; split++)
        {
            var (events, _) = await SseFraming.FrameAsync(input, [split]);
            Assert.Equal(MixedEvents, events.Select(e => Encoding.UTF8.GetString(e.Raw)));
        }
    }

    [Fact]
    public async Task TryRead_EveryPairOfSplitPoints_YieldsTheSameEvents()
    {
        var input = Encoding.UTF8.GetBytes(Mixed);
        for (var first = 1; first < input.Length; first++)
        {
            for (var second = first + 1; second < input.Length; second++)
            {
                var (events, _) = await SseFraming.FrameAsync(input, [first, second]);
                Assert.Equal(MixedEvents, events.Select(e => Encoding.UTF8.GetString(e.Raw)));
            }
        }
    }

    [Fact]
    public async Task TryRead_OneByteAtATime_YieldsTheSameEvents()
    {
        var input = Encoding.UTF8.GetBytes(Mixed);
        var (events, _) = await SseFraming.FrameAsync(input, Enumerable.Range(1, input.Length).ToArray());

        Assert.Equal(MixedEvents, events.Select(e => Encoding.UTF8.GetString(e.Raw)));
    }

    [Fact]
    public async Task TryRead_CrAtEndOfReadThenLf_IsOneCrlfNotTwoLineEnds()
    {
        var input = Encoding.UTF8.GetBytes("data: a\r\n\r\ndata: b\n\n");
        var (events, _) = await SseFraming.FrameAsync(input, [8]); // the read ends right after the first CR

        Assert.Equal(["data: a\r\n\r\n", "data: b\n\n"], events.Select(e => Encoding.UTF8.GetString(e.Raw)));
    }

    [Fact]
    public async Task TryRead_CrCrAcrossReads_EndsTheEvent()
    {
        var input = Encoding.UTF8.GetBytes("data: a\r\rdata: b\r\r");
        var (events, _) = await SseFraming.FrameAsync(input, [8, 9]);

        Assert.Equal(["data: a\r\r", "data: b\r\r"], events.Select(e => Encoding.UTF8.GetString(e.Raw)));
        Assert.All(events, e => Assert.Equal(SseReadStatus.Event, e.Status));
    }

    [Fact]
    public async Task TryRead_BodyEndsWithoutBlankLine_ReturnsTheRestAsFragment()
    {
        var input = Encoding.UTF8.GetBytes("data: {\"type\":\"finish\"}\n\ndata: [DONE]");
        var (events, _) = await SseFraming.FrameAsync(input, [30]);

        Assert.Equal(2, events.Count);
        Assert.Equal("data: [DONE]", Encoding.UTF8.GetString(events[1].Raw));
        Assert.Equal(SseReadStatus.Fragment, events[1].Status);
    }

    [Fact]
    public async Task TryRead_EventOverTheLimit_ReportsTooLarge()
    {
        var input = Encoding.UTF8.GetBytes("data: ok\n\ndata: " + new string('x', 5000) + "\n\n");
        var (events, tooLarge) = await SseFraming.FrameAsync(input, Enumerable.Range(1, 50).Select(i => i * 128).ToArray(), maxEventBytes: 4096);

        Assert.True(tooLarge);
        Assert.Equal(["data: ok\n\n"], events.Select(e => Encoding.UTF8.GetString(e.Raw)));
    }

    [Fact]
    public async Task TryRead_EventOverTheLimitInOneRead_ReportsTooLarge()
    {
        var input = Encoding.UTF8.GetBytes("data: ok\n\ndata: " + new string('x', 5000) + "\n\ndata: [DONE]\n\n");
        var (events, tooLarge) = await SseFraming.FrameAsync(input, [], maxEventBytes: 4096);

        Assert.True(tooLarge);
        Assert.Equal(["data: ok\n\n"], events.Select(e => Encoding.UTF8.GetString(e.Raw)));
    }

    [Fact]
    public async Task TryRead_UnterminatedTailOverTheLimit_ReportsTooLarge()
    {
        var input = Encoding.UTF8.GetBytes("data: " + new string('x', 5000));
        var (events, tooLarge) = await SseFraming.FrameAsync(input, [], maxEventBytes: 4096);

        Assert.True(tooLarge);
        Assert.Empty(events);
    }

    [Fact]
    public async Task TryRead_EventJustUnderTheLimit_IsNotTooLarge()
    {
        var line = "data: " + new string('x', 4000) + "\n\n";
        var input = Encoding.UTF8.GetBytes(line);
        var (events, tooLarge) = await SseFraming.FrameAsync(input, Enumerable.Range(1, 40).Select(i => i * 100).ToArray(), maxEventBytes: 4096);

        Assert.False(tooLarge);
        Assert.Equal(line, Encoding.UTF8.GetString(Assert.Single(events).Raw));
    }

    [Fact]
    public async Task TryRead_OneMegabyteLineIn4KReads_IsOneEvent()
    {
        var line = "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"" + new string('x', 1 << 20) + "\"}\n\n";
        var input = Encoding.UTF8.GetBytes(line + "data: [DONE]\n\n");
        var (events, _) = await SseFraming.FrameAsync(input, Enumerable.Range(1, input.Length / 4096).Select(i => i * 4096).ToArray());

        Assert.Equal(2, events.Count);
        Assert.Equal(line.Length, events[0].Raw.Length);
    }

    [Fact]
    public async Task TryRead_RandomStreamsAndRandomSplits_ConcatenationIsTheInput()
    {
        var random = new Random(20261124);
        string[] pieces = ["data: {\"type\":\"text-delta\"}", ": c", "id: 1", "data:", "data", "x", "é", "\u0000", "event: e"];
        string[] ends = ["\n", "\r\n", "\r"];
        for (var run = 0; run < 2000; run++)
        {
            var text = new StringBuilder();
            var lines = random.Next(0, 30);
            for (var i = 0; i < lines; i++)
            {
                text.Append(pieces[random.Next(pieces.Length)]).Append(ends[random.Next(ends.Length)]);
            }

            var input = Encoding.UTF8.GetBytes(text.ToString());
            var whole = await SseFraming.FrameAsync(input, []);
            var splits = Enumerable.Range(0, random.Next(0, 8)).Select(_ => random.Next(1, Math.Max(2, input.Length))).ToArray();
            var split = await SseFraming.FrameAsync(input, splits);

            Assert.Equal(input, split.Events.SelectMany(e => e.Raw).ToArray());
            Assert.Equal(whole.Events.Select(e => Convert.ToHexString(e.Raw)), split.Events.Select(e => Convert.ToHexString(e.Raw)));
        }
    }
}
