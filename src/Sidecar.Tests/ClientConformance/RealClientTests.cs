using System.Text.Json;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.ClientConformance;

/// <summary>
/// The real AI SDK v5 client (strict part validation: one unknown field kills its stream) reads
/// the emulator's answers through the sidecar exactly as it would read them directly.
/// </summary>
public class RealClientTests(DefaultSidecarFixture fixture) : IClassFixture<DefaultSidecarFixture>
{
    [Theory]
    [InlineData("")]
    [InlineData("reasoning search artifact")]
    [InlineData("artifact:diagram")]
    [InlineData("crlf chunk:5 reasoning")]
    public async Task Send_WellFormedAnswer_ClientEndsReadyWithTheWholeMessage(string scenario)
    {
        var session = Chat.NewSession();

        var direct = await RealClient.SendAsync(ChatUrl(fixture.Emulator.Address, session), session, "/scenario " + scenario);
        var proxied = await RealClient.SendAsync(ChatUrl(fixture.Sidecar.PublicAddress, session), session, "/scenario " + scenario);

        Assert.Equal("ready", proxied.Status);
        Assert.Null(proxied.Error);
        Assert.Equal(direct.PartTypes, proxied.PartTypes);
        Assert.Equal(direct.Text, proxied.Text);
        Assert.NotEmpty(proxied.Text);
        Assert.Equal(direct.Data.Select(d => d.GetProperty("type").GetString()), proxied.Data.Select(d => d.GetProperty("type").GetString()));
        if (scenario.Contains("artifact", StringComparison.Ordinal))
        {
            Assert.Equal("data-finish", proxied.Data[^1].GetProperty("type").GetString());
            Assert.Contains(proxied.Data, d => d.GetProperty("type").GetString() == "data-clear");
        }
    }

    [Fact]
    public async Task Send_PersistenceErrorAfterFinish_ClientEndsInErrorWithTheTypedErrorText()
    {
        var session = Chat.NewSession();

        var result = await RealClient.SendAsync(ChatUrl(fixture.Sidecar.PublicAddress, session), session, "/scenario persist-error");

        Assert.Equal("error", result.Status);
        using var errorText = JsonDocument.Parse(result.Error!.Value.GetProperty("message").GetString()!);
        Assert.Equal("persistence", errorText.RootElement.GetProperty("category").GetString());
        Assert.NotEmpty(result.Text);
    }

    [Theory]
    // Paced, so that the frames before the drop are read before the reset discards unsent bytes.
    [InlineData("pace:30 drop:5", "SERVER_ERROR", "upstream_failed", false)]
    [InlineData("end:7", "SERVER_ERROR", "ended_without_finish", false)]
    [InlineData("half:7", "SERVER_ERROR", "ended_without_finish", false)]
    [InlineData("artifact end:11", "SERVER_ERROR", "ended_without_finish", true)]
    public async Task Send_UpstreamFailsMidStream_ClientEndsInErrorWithTheTypedErrorText(string scenario, string type, string reason, bool artifact)
    {
        var session = Chat.NewSession();

        var result = await RealClient.SendAsync(ChatUrl(fixture.Sidecar.PublicAddress, session), session, "/scenario " + scenario);

        // Directly, these end as a bare TypeError (drop) or as "ready" with half an answer (end).
        AssertStreamError(result, type, reason);
        if (artifact)
        {
            // The artifact leaves "streaming": its data stream got data-finish.
            Assert.Equal("data-finish", result.Data[^1].GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task Send_UpstreamGoesSilent_ClientEndsInATimeoutErrorInsteadOfSpinning()
    {
        await using var sidecar = await SidecarServer.StartAsync(fixture.Emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:UpstreamIdleTimeout"] = "00:00:00.300",
        });
        var session = Chat.NewSession();

        var result = await RealClient.SendAsync(ChatUrl(sidecar.PublicAddress, session), session, "/scenario stall:6");

        AssertStreamError(result, "TIMEOUT", "upstream_idle");
    }

    [Theory]
    [InlineData("rate-limit", "RATE_LIMIT", 429)]
    [InlineData("memory", "SERVER_ERROR", 500)]
    [InlineData("quota", "USAGE_LIMIT_EXCEEDED", 402)]
    [InlineData("model-not-allowed", "MODEL_ACCESS_DENIED", 403)]
    [InlineData("html", "SERVER_ERROR", 500)]
    public async Task Send_UpstreamErrorBody_ClientGetsATypedErrorItCanClassify(string kind, string type, int status)
    {
        var session = Chat.NewSession();

        var result = await RealClient.SendAsync(ChatUrl(fixture.Sidecar.PublicAddress, session), session, "/scenario error:" + kind);

        // The client keeps only the body text as its error message: the type must be in it.
        Assert.Equal("error", result.Status);
        using var body = JsonDocument.Parse(result.Error!.Value.GetProperty("message").GetString()!);
        Assert.Equal(type, body.RootElement.GetProperty("type").GetString());
        Assert.Equal(status, body.RootElement.GetProperty("statusCode").GetInt32());
    }

    [Theory]
    [InlineData("InBand", "ack:saved", null)]
    [InlineData("InBand", "ack:failed", "persistence_failed")]
    [InlineData("InBand", "deltas:3", "persistence_unacknowledged")]
    [InlineData("Callback", "callback:saved", null)]
    [InlineData("Callback", "callback:failed", "persistence_failed")]
    [InlineData("Probe", "deltas:3", null)]
    [InlineData("Probe", "save:failed", "persistence_unacknowledged")]
    public async Task Send_PersistenceAcknowledgment_ClientEndsReadyOrWithThePersistenceError(string mode, string scenario, string? reason)
    {
        const string token = "conformance-callback-token";
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Persistence:Mode"] = mode,
            // Short only where the deadline is what the test is about: a loaded machine must not turn an ack into a timeout.
            ["Sidecar:Persistence:AckTimeout"] = reason == "persistence_unacknowledged" ? "00:00:00.500" : "00:00:10",
            ["Sidecar:Persistence:CallbackToken"] = token,
            ["Sidecar:Persistence:ProbeUrl"] = "{upstream}/api/internal/messages/{sessionId}/{messageId}",
            ["Sidecar:Persistence:ProbeRetryDelay"] = "00:00:00.020",
            ["Sidecar:Persistence:ProbeMaxRetryDelay"] = "00:00:00.050",
        });
        emulator.Options.AckCallbackUrl = sidecar.ManagementAddress + "sidecar/v1/acks/{messageId}";
        emulator.Options.AckCallbackToken = token;
        var session = Chat.NewSession();

        var result = await RealClient.SendAsync(ChatUrl(sidecar.PublicAddress, session), session, "/scenario " + scenario);

        Assert.NotEmpty(result.Text);
        if (reason is null)
        {
            Assert.Equal("ready", result.Status);
            Assert.Null(result.Error);
            return;
        }

        Assert.Equal("error", result.Status);
        using var errorText = JsonDocument.Parse(result.Error!.Value.GetProperty("message").GetString()!);
        var error = errorText.RootElement;
        Assert.Equal("persistence", error.GetProperty("category").GetString());
        Assert.Equal("We couldn't save this response. Refreshing may lose it.", error.GetProperty("message").GetString());
        Assert.Equal(reason, error.GetProperty("metadata").GetProperty("reason").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("metadata").GetProperty("messageId").GetString()));
    }

    [Fact]
    public async Task Send_QuotaWarningBeforeAStreamError_ClientAcceptsItAndEndsInTheError()
    {
        await using var emulator = await EmulatorServer.StartAsync(o => o.QuotaFailureRate = 1.0);
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Quota:BaseUrl"] = emulator.Address.ToString(),
            ["Sidecar:Quota:SweepInterval"] = "00:00:00",
        });
        var session = Chat.NewSession();

        var result = await RealClient.SendAsync(ChatUrl(sidecar.PublicAddress, session), session, "/scenario end:5", bearer: "token-of-alice");

        AssertStreamError(result, "SERVER_ERROR", "ended_without_finish");
        Assert.Equal("data-quota-warning", result.Data[^1].GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("reasoning:2 search artifact deltas:3 ack:failed")]
    [InlineData("artifact:diagram deltas:5 ack:failed")]
    [InlineData("deltas:4 save:failed")]
    public async Task Send_SaveFailed_TheRepairedMessageIsWhatTheClientAssembled(string scenario)
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Persistence:Mode"] = "InBand",
            ["Sidecar:Persistence:AckTimeout"] = "00:00:00.300",
            ["Sidecar:Persistence:RepairSaveUrl"] = "{upstream}/api/internal/messages/{sessionId}",
            ["Sidecar:Quota:PollInterval"] = "00:00:00.050",
        });
        var session = Chat.NewSession();

        var result = await RealClient.SendAsync(ChatUrl(sidecar.PublicAddress, session), session, "/scenario " + scenario);

        Assert.Equal("error", result.Status);
        var assembled = System.Text.Json.Nodes.JsonNode.Parse(result.Assistant!.Value.GetRawText())!;
        var saved = System.Text.Json.Nodes.JsonNode.Parse(await emulator.Journal.MessageSaved((string)assembled["id"]!).DefaultTimeout())!;
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(assembled, saved), $"client: {assembled.ToJsonString()}\nrepair: {saved.ToJsonString()}");
    }

    private static void AssertStreamError(RealClient.Result result, string type, string reason)
    {
        Assert.Equal("error", result.Status);
        using var errorText = JsonDocument.Parse(result.Error!.Value.GetProperty("message").GetString()!);
        var error = errorText.RootElement;
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal("stream", error.GetProperty("category").GetString());
        Assert.Equal("recoverable", error.GetProperty("severity").GetString());
        Assert.Equal("sidecar", error.GetProperty("source").GetString());
        Assert.Equal(reason, error.GetProperty("metadata").GetProperty("reason").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("metadata").GetProperty("messageId").GetString()));
    }

    [Fact]
    public async Task Send_QuietStreamWithHeartbeats_ClientIgnoresTheComments()
    {
        await using var sidecar = await SidecarServer.StartAsync(fixture.Emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00.040",
        });
        using var heartbeats = new InstrumentCounter(sidecar, "sidecar.heartbeat.sent");
        var session = Chat.NewSession();

        // 200 ms between parts: several 40 ms heartbeat ticks find the stream quiet.
        var result = await RealClient.SendAsync(ChatUrl(sidecar.PublicAddress, session), session, "/scenario pace:200 deltas:3");

        Assert.Equal("ready", result.Status);
        Assert.Null(result.Error);
        Assert.True(heartbeats.Total > 0);
        Assert.NotEmpty(result.Text);
    }

    private static Uri ChatUrl(Uri server, string session) => new(server, $"/api/v/c010/{session}");
}
