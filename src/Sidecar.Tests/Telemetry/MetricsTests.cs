using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Telemetry;

/// <summary>One test per instrument family: drive the scenario, read what was recorded, with its tags.</summary>
public sealed class MetricsTests : IAsyncLifetime
{
    private EmulatorServer _emulator = null!;

    public async Task InitializeAsync() => _emulator = await EmulatorServer.StartAsync();

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    [Fact]
    public async Task Streams_StartedEndedActiveDurationFirstEventEventsAndBytes()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address);
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();

        var (pump, _) = await AnswerAsync(sidecar, client, "deltas:3");

        Assert.Equal(1, metrics.Sum("sidecar.stream.started"));
        Assert.Equal(1, metrics.Sum("sidecar.stream.ended", ("outcome", "completed")));
        Assert.Equal(0, metrics.Sum("sidecar.stream.active"));
        Assert.Single(metrics.Of("sidecar.stream.duration", ("outcome", "completed")));
        Assert.Single(metrics.Of("sidecar.stream.first_event.duration"));
        Assert.Equal(pump.State.Events, metrics.Sum("sidecar.stream.events"));
        Assert.Equal(pump.State.Bytes, metrics.Sum("sidecar.stream.bytes"));
    }

    /// <summary>
    /// The sidecar's own parts (here the persistence error and [DONE] it sends when an in-band ack
    /// reports a failed save) are not counted as events read from the upstream.
    /// </summary>
    [Fact]
    public async Task StreamEventsAndBytes_CountOnlyWhatTheUpstreamSent()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?> { ["Sidecar:Persistence:Mode"] = "InBand" });
        using var metrics = new MeasurementRecorder(sidecar);
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var client = sidecar.CreateClient();

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario deltas:3 ack:failed");
        var (pump, outcome) = await ended.DefaultTimeout();

        Assert.Equal(Sidecar.Streams.StreamOutcome.PersistenceFailed, outcome);
        Assert.True(pump.State.Events > answer.Record.TotalFrames, "the sidecar added parts of its own");
        Assert.Equal(answer.Record.TotalFrames, metrics.Sum("sidecar.stream.events"));
        Assert.Equal(answer.Record.SentBytes().Length, metrics.Sum("sidecar.stream.bytes"));
    }

    [Fact]
    public async Task InjectedParts_ByPartAndReason()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address);
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();

        await AnswerAsync(sidecar, client, "artifact end:11");

        foreach (var part in new[] { "data_finish", "error", "done" })
        {
            Assert.Equal(1, metrics.Sum("sidecar.stream.injected", ("part", part), ("reason", "ended_without_finish")));
        }
    }

    [Fact]
    public async Task PersistenceAcks_BySourceAndResult_WithTheirLatency()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?> { ["Sidecar:Persistence:Mode"] = "InBand" });
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();

        foreach (var scenario in new[] { "ack:saved", "ack:failed" })
        {
            await AnswerAsync(sidecar, client, "deltas:1 " + scenario);
        }

        Assert.Equal(1, metrics.Sum("sidecar.persistence.acks", ("source", "in_band"), ("result", "saved")));
        Assert.Equal(1, metrics.Sum("sidecar.persistence.acks", ("source", "in_band"), ("result", "failed")));
        Assert.Equal(2, metrics.Of("sidecar.persistence.ack.duration").Count);
    }

    [Fact]
    public async Task Resumes_ByResult_AndReplayedBytes()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address);
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        var post = Chat.Post(session, "/scenario end:5");
        post.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "token-of-alice");
        using (var answer = await client.SendAsync(post).DefaultTimeout())
        {
            await answer.Content.ReadAsStringAsync();
        }

        await ended.DefaultTimeout();
        await StoreProbe.WaitForEndAsync(sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var replayed = await client.SendAsync(Chat.Resume(session, bearer: "token-of-alice")).DefaultTimeout();
        var replayedBody = await replayed.Content.ReadAsByteArrayAsync();
        using var denied = await client.SendAsync(Chat.Resume(session, bearer: "token-of-mallory")).DefaultTimeout();
        using var unknown = await client.SendAsync(Chat.Resume(Chat.NewSession())).DefaultTimeout();

        Assert.Equal(1, metrics.Sum("sidecar.resume.requests", ("result", "replayed")));
        Assert.Equal(1, metrics.Sum("sidecar.resume.requests", ("result", "denied")));
        Assert.Equal(1, metrics.Sum("sidecar.resume.requests", ("result", "not_found")));
        // Replayed bytes count the events, not the id lines the sidecar adds.
        Assert.InRange(metrics.Sum("sidecar.resume.bytes"), 1, replayedBody.Length);
    }

    [Fact]
    public async Task Store_BatchesEventsAppendLatencyAndAvailability()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = RedisServer.NewPrefix(),
        });
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        using var answer = await client.SendAsync(Chat.Post(session, "/scenario deltas:3")).DefaultTimeout();
        await answer.Content.ReadAsStringAsync();
        await StoreProbe.WaitForEndAsync(sidecar.Services.GetRequiredService<IStreamStore>(), session);

        Assert.True(metrics.Sum("sidecar.store.batches") >= 1);
        Assert.True(metrics.Sum("sidecar.store.events") >= 9);
        Assert.NotEmpty(metrics.Of("sidecar.store.append.duration"));
        Assert.Equal(1, metrics.Of("sidecar.store.available")[^1].Value);
        Assert.Empty(metrics.Of("sidecar.store.lost"));
    }

    [Fact]
    public async Task UpstreamReadBuffers_AfterAStream_AreKeptForTheNextReads()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address);
        using var metrics = new MeasurementRecorder(sidecar);
        Assert.Equal(0, metrics.Of("sidecar.upstream.read_buffers.retained")[^1].Value);
        using var client = sidecar.CreateClient();

        await AnswerAsync(sidecar, client, "deltas:3");

        // The pump's reads took their blocks from the pool, and gave them back once released.
        var retained = metrics.Of("sidecar.upstream.read_buffers.retained")[^1].Value;
        Assert.InRange(retained, 1, Sidecar.Streams.UpstreamBufferPool.DefaultMaxRetained);
        Assert.Equal(retained, sidecar.Services.GetRequiredService<Sidecar.Streams.UpstreamBufferPool>().Retained);
    }

    [Fact]
    public async Task UpstreamReadBuffers_NoLongerNeeded_AreLetGoOnTheTrimTimer()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, time: time);
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();
        await AnswerAsync(sidecar, client, "deltas:3");
        Assert.InRange(metrics.Of("sidecar.upstream.read_buffers.retained")[^1].Value, 1, Sidecar.Streams.UpstreamBufferPool.DefaultMaxRetained);

        // The first trim sees the stream's blocks needed in its interval; the next one, none.
        time.Advance(Sidecar.Streams.UpstreamBufferPool.TrimInterval);
        time.Advance(Sidecar.Streams.UpstreamBufferPool.TrimInterval);

        Assert.Equal(0, metrics.Of("sidecar.upstream.read_buffers.retained")[^1].Value);
    }

    [Fact]
    public async Task ErrorBodies_ByWhatWasDone()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address);
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();

        foreach (var kind in new[] { "quota", "rate-limit", "huge" })
        {
            using var response = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario error:" + kind)).DefaultTimeout();
            await response.Content.ReadAsStringAsync();
        }

        Assert.Equal(1, metrics.Sum("sidecar.upstream.error_bodies", ("result", "normalized")));
        Assert.Equal(1, metrics.Sum("sidecar.upstream.error_bodies", ("result", "complete")));
        Assert.Equal(1, metrics.Sum("sidecar.upstream.error_bodies", ("result", "too_large")));
    }

    [Fact]
    public async Task Quota_SettlementsOutboxAndRepairs()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Quota:BaseUrl"] = _emulator.Address.ToString(),
            ["Sidecar:Quota:PollInterval"] = "00:00:00.050",
            ["Sidecar:Quota:SweepInterval"] = "00:00:00",
            ["Sidecar:Persistence:Mode"] = "InBand",
            ["Sidecar:Persistence:RepairSaveUrl"] = "{upstream}/api/internal/messages/{sessionId}",
        });
        using var metrics = new MeasurementRecorder(sidecar);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var post = Chat.Post(session, "/scenario deltas:2 ack:failed");
        post.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "token-of-alice");

        using (var answer = await client.SendAsync(post).DefaultTimeout())
        {
            await answer.Content.ReadAsStringAsync();
        }

        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();
        await _emulator.Quota.Find(record.MessageId)!.Settled.DefaultTimeout();
        await _emulator.Journal.MessageSaved(record.MessageId).DefaultTimeout();
        var reconciler = sidecar.Services.GetRequiredService<Sidecar.Quota.QuotaReconciler>();
        var round = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        reconciler.RoundCompleted += () => round.TrySetResult();
        await round.Task.DefaultTimeout();

        Assert.Equal(1, metrics.Sum("sidecar.quota.settlements", ("action", "release"), ("outcome", "settled")));
        Assert.Equal(1, metrics.Sum("sidecar.persistence.repairs", ("outcome", "saved")));
        Assert.Equal(0, metrics.Of("sidecar.quota.outbox.depth")[^1].Value);
    }

    /// <summary>Posts a scenario through the sidecar, reads the answer to its end, and returns once its pump has ended.</summary>
    private static async Task<(Sidecar.Streams.StreamPump Pump, Sidecar.Streams.StreamOutcome Outcome)> AnswerAsync(SidecarServer sidecar, HttpClient client, string scenario)
    {
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var answer = await client.SendAsync(Chat.Post(session, "/scenario " + scenario)).DefaultTimeout();
        await answer.Content.ReadAsStringAsync();
        return await ended.DefaultTimeout();
    }
}
