using Sidecar.Streams;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

public class StreamLimitTests
{
    [Theory]
    [InlineData("Sidecar:Streams:MaxStreamBytes", "4096", "deltas:200", StreamOutcome.StreamTooLarge)]
    [InlineData("Sidecar:Streams:MaxEventBytes", "2048", "malformed:long-line:5000", StreamOutcome.EventTooLarge)]
    internal async Task Post_StreamOverALimit_IsCutOffAndTheSidecarKeepsServing(string key, string value, string scenario, StreamOutcome expected)
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?> { [key] = value });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        // The client's connection is reset like the upstream's would be; how much of the prefix it
        // reads first is a race with the reset (the terminal-part work replaces the reset).
        var failure = await Record.ExceptionAsync(async () =>
        {
            using var response = await client.SendAsync(Chat.Post(session, "/scenario " + scenario), HttpCompletionOption.ResponseHeadersRead);
            await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();
        });
        Assert.True(failure is HttpRequestException or IOException, failure?.ToString());

        var (pump, outcome) = await ended.DefaultTimeout();
        Assert.Equal(expected, outcome);
        Assert.True(pump.State.Bytes <= long.Parse(value, System.Globalization.CultureInfo.InvariantCulture) || expected == StreamOutcome.EventTooLarge);

        // The next stream is served normally.
        using var next = await client.SendAsync(Chat.Post(Chat.NewSession(), "hello")).DefaultTimeout();
        Assert.EndsWith("data: [DONE]\n\n", await next.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
