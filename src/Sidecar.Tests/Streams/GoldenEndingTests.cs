using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>One emulator and two sidecars (no ack awaited; in-band acks), default event ids, no heartbeats.</summary>
public sealed class GoldenFixture : IAsyncLifetime
{
    public EmulatorServer Emulator { get; private set; } = null!;

    public SidecarServer Sidecar { get; private set; } = null!;

    public SidecarServer InBandAcks { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = await EmulatorServer.StartAsync();
        Sidecar = await SidecarServer.StartAsync(Emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        });
        InBandAcks = await SidecarServer.StartAsync(Emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
            ["Sidecar:Persistence:Mode"] = "InBand",
        });
    }

    public async Task DisposeAsync()
    {
        await Sidecar.DisposeAsync();
        await InBandAcks.DisposeAsync();
        await Emulator.DisposeAsync();
    }
}

/// <summary>
/// For every emulator scenario, the exact bytes the client receives, live and on resume, against
/// golden files in <c>src/Sidecar.Tests/Golden</c> (ids, timestamps and request ids replaced by
/// placeholders). <c>SIDECAR_UPDATE_GOLDEN=1</c> rewrites them; review the diff before committing.
/// </summary>
public class GoldenEndingTests(GoldenFixture fixture) : IClassFixture<GoldenFixture>
{
    [Theory]
    [InlineData("complete", "deltas:3")]
    [InlineData("artifact", "artifact deltas:2")]
    [InlineData("crlf", "crlf deltas:2")]
    [InlineData("no-final-blank", "malformed:no-final-blank deltas:2")]
    [InlineData("bad-json", "malformed:bad-json deltas:2")]
    [InlineData("stream-error", "stream-error:6")]
    [InlineData("persist-error", "persist-error deltas:2")]
    [InlineData("resume-error", "resume-error deltas:2")]
    [InlineData("drop", "gate:5 drop:5")]
    [InlineData("end", "end:7")]
    [InlineData("half-event", "half:5")]
    [InlineData("artifact-cut", "artifact end:11")]
    [InlineData("ack-saved", "ack:saved deltas:2", true)]
    [InlineData("ack-failed", "ack:failed deltas:2", true)]
    [InlineData("ack-failed-and-upstream-error", "ack:failed persist-error deltas:2", true)]
    [InlineData("error-then-finish-held-mode", "stream-error-finish:5", true)]
    public async Task Scenario_LiveAndResumedBytes_MatchTheGoldenFile(string name, string scenario, bool inBandAcks = false)
    {
        var sidecar = inBandAcks ? fixture.InBandAcks : fixture.Sidecar;
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        using var call = await Chat.StartAsync(client, fixture.Emulator, session, "/scenario " + scenario);
        if (scenario.Contains("gate:5", StringComparison.Ordinal))
        {
            // Let the five events through before the connection drops (a reset discards unsent bytes).
            for (var i = 0; i < 5; i++)
            {
                Assert.NotNull(await call.Reader.NextAsync());
            }

            call.Record.ReleaseGate();
        }

        var live = await call.Reader.ReadToEndAsync();
        await StoreProbe.WaitForEndAsync(sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        var resume = resumed.StatusCode == HttpStatusCode.NoContent
            ? "204 No Content\n"
            : $"{(int)resumed.StatusCode}\n" + await resumed.Content.ReadAsStringAsync();

        var messageId = call.Response.Headers.GetValues("x-message-id").Single();
        var actual = "# live\n" + Normalize(Chat.Text(live), messageId, session) + "# resume\n" + Normalize(resume, messageId, session);
        var path = Path.Combine(Loopback.RepositoryRoot(), "src", "Sidecar.Tests", "Golden", name + ".sse");
        if (Environment.GetEnvironmentVariable("SIDECAR_UPDATE_GOLDEN") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllTextAsync(path, actual);
        }

        Assert.True(File.Exists(path), $"no golden file {path}: run with SIDECAR_UPDATE_GOLDEN=1 and review it");
        Assert.Equal(await File.ReadAllTextAsync(path), actual);
    }

    /// <summary>Replaces what differs per run: ids, request ids and timestamps.</summary>
    private static string Normalize(string text, string messageId, string session)
    {
        text = text.Replace(messageId, "<messageId>", StringComparison.Ordinal).Replace(session, "<sessionId>", StringComparison.Ordinal);
        text = Regex.Replace(text, @"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<timestamp>");
        text = Regex.Replace(text, @"(\\?""requestId\\?"":\\?"")[^""\\]*", "$1<requestId>");
        return text;
    }
}
