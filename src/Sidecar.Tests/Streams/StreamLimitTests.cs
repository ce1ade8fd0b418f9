using ChatUpstream;
using Sidecar.Streams;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

public class StreamLimitTests
{
    [Theory]
    // About 9 KB are written before the gate: past the 4 KB stream limit.
    [InlineData("Sidecar:Streams:MaxStreamBytes", "4096", "deltas:200 gate:150", "StreamTooLarge", "stream_too_large")]
    // The fourth frame is a 5 KB line: past the 2 KB event limit.
    [InlineData("Sidecar:Streams:MaxEventBytes", "2048", "malformed:long-line:5000 gate:6", "EventTooLarge", "event_too_large")]
    public async Task Post_StreamOverALimit_IsCutOffWithATypedEnding_AndTheUpstreamReleased(string key, string value, string scenario, string expected, string reason)
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?> { [key] = value });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var response = await client.SendAsync(Chat.Post(session, "/scenario " + scenario), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var body = await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();
        Endings.AssertErrorEnding(Endings.Parts(Chat.Text(body)), "SERVER_ERROR", "stream", reason);

        var (_, outcome) = await ended.DefaultTimeout();
        Assert.Equal(expected, outcome.ToString());
        // The emulator, waiting at its gate, sees the sidecar close the upstream connection.
        var record = await emulator.Journal.ForSession(session).DefaultTimeout();
        Assert.Equal(AnswerStatus.ReaderGone, await record.Ended.DefaultTimeout());

        // The next stream is served normally.
        using var next = await client.SendAsync(Chat.Post(Chat.NewSession(), "hello")).DefaultTimeout();
        Assert.EndsWith("data: [DONE]\n\n", await next.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_ClientThatStopsReading_DoesNotHoldTheUpstream_AndReadsOnFromTheStore_WithNothingLostOrRepeated()
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:MaxClientBacklogBytes"] = "65536",
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var behind = new InstrumentCounter(sidecar, "sidecar.client.behind");
        using var disconnected = new InstrumentCounter(sidecar, "sidecar.client.disconnected");

        // The client reads the first events from memory; the gate holds the rest until then.
        using var response = await client.SendAsync(Chat.Post(session, "/scenario gate:5 deltas:2000 delta-bytes:10000"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var reader = new TestEventReader(await response.Content.ReadAsStreamAsync());
        var record = await emulator.Journal.ForSession(session).DefaultTimeout();
        await record.GateReached.DefaultTimeout();
        for (var i = 0; i < 5; i++)
        {
            Assert.NotNull(await reader.NextAsync());
        }

        // Then 20 MB of answer while it reads nothing until the upstream is done: far more than
        // socket buffers and the 64 KiB backlog absorb.
        record.ReleaseGate();
        var (_, outcome) = await ended.DefaultTimeout();
        Assert.True(outcome == StreamOutcome.Completed, $"{outcome}\n{sidecar.Logs.Text}");
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        await behind.WaitForTotalAsync(1).DefaultTimeout();

        // Then it reads on: every upstream event once, in order, with its id, and [DONE].
        var body = await reader.ReadToEndAsync();
        Assert.Equal(Chat.Text(Chat.WithIds(Chat.Events(record.SentBytes()))), Chat.Text(body));
        Assert.Equal(0, disconnected.Total);
    }
}
