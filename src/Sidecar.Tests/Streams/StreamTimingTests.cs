using ChatUpstream;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Streams;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>Heartbeats, the idle timeout and the duration limit, driven by a fake clock.</summary>
public class StreamTimingTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
    private EmulatorServer _emulator = null!;
    private SidecarServer _sidecar = null!;

    public async Task InitializeAsync()
    {
        _emulator = await EmulatorServer.StartAsync();
        _sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:15",
            ["Sidecar:Streams:UpstreamIdleTimeout"] = "00:01:00",
            ["Sidecar:Streams:MaxDuration"] = "00:05:00",
            ["Sidecar:Streams:DrainTimeout"] = "00:00:20",
            ["Sidecar:Resume:EventIds"] = "false",
        }, _time);
    }

    public async Task DisposeAsync()
    {
        await _sidecar.DisposeAsync();
        await _emulator.DisposeAsync();
    }

    [Fact]
    public async Task QuietStream_GetsHeartbeatComments_AndOtherwiseTheUpstreamBytes()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:1");
        var (reader, record) = (call.Reader, call.Record);
        Assert.StartsWith("data: {\"type\":\"start\"", await reader.NextAsync());
        await record.GateReached.DefaultTimeout();

        // The first tick finds the start event just written; the second finds a quiet stream.
        _time.Advance(TimeSpan.FromSeconds(15));
        _time.Advance(TimeSpan.FromSeconds(15));
        Assert.Equal(": keep-alive", await reader.NextAsync());
        _time.Advance(TimeSpan.FromSeconds(15));
        Assert.Equal(": keep-alive", await reader.NextAsync());

        record.ReleaseGate();
        var body = Chat.Text(await reader.ReadToEndAsync());
        Assert.Equal(Chat.Text(record.SentBytes()), body.Replace(": keep-alive\n\n", string.Empty, StringComparison.Ordinal));
    }

    [Fact]
    public async Task UpstreamSilentPastIdleTimeout_StreamIsCutOff_AndTheUpstreamReleased()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario stall:3");
        var (reader, record) = (call.Reader, call.Record);
        for (var i = 0; i < 3; i++)
        {
            Assert.NotNull(await reader.NextAsync());
        }

        await record.Stalled.DefaultTimeout();
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.False(ended.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(StreamOutcome.UpstreamIdle, (await ended.DefaultTimeout()).Outcome);
        Assert.Equal(AnswerStatus.StalledThenAbandoned, await record.Ended.DefaultTimeout());
        // Without the sidecar the client would spin in "streaming" forever.
        var parts = Endings.Parts(Chat.Text(await reader.ReadToEndAsync()));
        Assert.Equal(3 + 2, parts.Count);
        Endings.AssertErrorEnding(parts, "TIMEOUT", "stream", "upstream_idle");
    }

    [Fact]
    public async Task IdleTimeout_CountsFromTheLastRead_NotFromTheStart()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:1 stall:3");
        var (reader, record) = (call.Reader, call.Record);
        Assert.NotNull(await reader.NextAsync());
        await record.GateReached.DefaultTimeout();

        // 40 s quiet, then two more events: the next 60 s count from them.
        _time.Advance(TimeSpan.FromSeconds(40));
        record.ReleaseGate();
        Assert.NotNull(await reader.NextAsync());
        Assert.NotNull(await reader.NextAsync());
        await record.Stalled.DefaultTimeout();
        _time.Advance(TimeSpan.FromSeconds(20));
        _time.Advance(TimeSpan.FromSeconds(39));
        // A watchdog counting from the start would have fired 39 s ago. (Its unwinding is
        // asynchronous, so this can miss such a bug; IdleWatchdogTests pin the timing exactly.)
        Assert.False(ended.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(StreamOutcome.UpstreamIdle, (await ended.DefaultTimeout()).Outcome);
        var parts = Endings.Parts(Chat.Text(await reader.ReadToEndAsync()));
        Assert.Equal(3 + 2, parts.Count);
        Endings.AssertErrorEnding(parts, "TIMEOUT", "stream", "upstream_idle");
    }

    [Fact]
    public async Task StreamPastMaxDuration_IsCutOff()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:15",
            ["Sidecar:Streams:UpstreamIdleTimeout"] = "00:10:00",
            ["Sidecar:Streams:MaxDuration"] = "00:05:00",
        }, _time);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:2");
        await call.Record.GateReached.DefaultTimeout();
        Assert.NotNull(await call.Reader.NextAsync());

        // Heartbeats keep the client side busy; the upstream stays quiet, below its idle timeout.
        for (var i = 0; i < 9; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(30));
        }

        Assert.False(ended.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(StreamOutcome.MaxDurationExceeded, (await ended.DefaultTimeout()).Outcome);
        Assert.Equal(AnswerStatus.ReaderGone, await call.Record.Ended.DefaultTimeout());
        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Endings.AssertErrorEnding(parts, "TIMEOUT", "stream", "max_duration");
    }

    [Fact]
    public async Task UpstreamSilentAfterDone_ClientResponseEndsCleanlyAtOnce()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);

        // deltas:3 is 10 frames; the emulator then keeps the connection open and silent.
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:3 stall:10");
        var body = await call.Reader.ReadToEndAsync();

        Assert.Equal(call.Record.SentBytes(), body);
        Assert.False(ended.IsCompleted);
        _time.Advance(TimeSpan.FromMinutes(1));
        // The client had the whole answer: its silence after [DONE] does not fail it (a failed
        // outcome would release the reservation of an answer that was delivered).
        Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task Shutdown_LiveStreamFinishesWithinTheDrainTime()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3");
        await call.Record.GateReached.DefaultTimeout();

        var stopping = _sidecar.StopAsync();
        var health = await _sidecar.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(c => c.Tags.Contains("ready")).DefaultTimeout();
        Assert.Equal(HealthStatus.Unhealthy, health.Status);
        Assert.False(stopping.IsCompleted);

        call.Record.ReleaseGate();
        var body = await call.Reader.ReadToEndAsync();
        Assert.Equal(AnswerStatus.Completed, await call.Record.Ended.DefaultTimeout());
        Assert.Equal(call.Record.SentBytes(), body);
        Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
        await stopping.DefaultTimeout();
    }

    [Fact]
    public async Task Shutdown_StreamStillRunningAtTheDrainDeadline_EndsWithATypedError()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3");
        await call.Record.GateReached.DefaultTimeout();

        var stopping = _sidecar.StopAsync();
        _time.Advance(TimeSpan.FromSeconds(19));
        Assert.False(ended.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(StreamOutcome.ShuttingDown, (await ended.DefaultTimeout()).Outcome);
        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Assert.Equal(3 + 2, parts.Count);
        Endings.AssertErrorEnding(parts, "SERVICE_UNAVAILABLE", "stream", "shutting_down");
        await stopping.DefaultTimeout();
        Assert.Equal(AnswerStatus.ReaderGone, await call.Record.Ended.DefaultTimeout());
    }
}
