using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ChatUpstream;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Persistence;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Persistence;

/// <summary>
/// The upstream's finish is held until the answer's save is acknowledged: saved lets it through
/// unchanged; failed, or no acknowledgment before the deadline, adds the contract's persistence
/// error after finish. Live and on resume.
/// </summary>
public sealed class PersistenceAckTests : IAsyncLifetime
{
    private const string Token = "test-callback-token-0123456789";
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
    private EmulatorServer _emulator = null!;

    public async Task InitializeAsync() => _emulator = await EmulatorServer.StartAsync();

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    [Fact]
    public async Task InBand_Saved_ClientGetsTheAnswerUnchanged_WithoutTheAckPart()
    {
        await using var sidecar = await StartSidecarAsync("InBand");
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario ack:saved");
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        var expected = Chat.Events(record.SentBytes()).Where(e => !Chat.Text(e).Contains("data-persistence", StringComparison.Ordinal)).SelectMany(e => e).ToArray();
        Assert.Equal(Chat.Text(expected), Chat.Text(body));
    }

    [Fact]
    public async Task InBand_Failed_ClientGetsFinishThenThePersistenceErrorThenDone()
    {
        await using var sidecar = await StartSidecarAsync("InBand");
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var response = await client.SendAsync(Chat.Post(session, "/scenario ack:failed"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var parts = Endings.Parts(Chat.Text(await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync()));

        Assert.Equal("{\"type\":\"finish\"}", parts[^3]);
        var error = Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", "persistence_failed", messageId: response.Headers.GetValues("x-message-id").Single());
        Assert.Equal("We couldn't save this response. Refreshing may lose it.", error.GetProperty("message").GetString());
        Assert.DoesNotContain(parts, p => p.Contains("data-persistence", StringComparison.Ordinal));
        Assert.Equal(StreamOutcome.PersistenceFailed, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task InBand_Saved_WithTheAckPartKept_ClientGetsTheAnswerWithIt()
    {
        await using var sidecar = await StartSidecarAsync("InBand", settings: new() { ["Sidecar:Persistence:RemoveInBandAck"] = "false" });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario ack:saved deltas:2");

        Assert.Equal(Chat.Text(answer.Record.SentBytes()), Chat.Text(answer.Body));
        Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task InBand_NoAckBeforeTheDeadline_FinishIsHeldThenThePersistenceErrorFollows()
    {
        await using var sidecar = await StartSidecarAsync("InBand", _time);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:2");
        Assert.Equal(AnswerStatus.Completed, await call.Record.Ended.DefaultTimeout());
        var pump = await sidecar.HeldFinishAsync(session);

        // The upstream has sent everything; the client has everything but finish and [DONE].
        var beforeFinish = new List<string>();
        string? line;
        while ((line = await call.Reader.NextAsync()) != "data: {\"type\":\"finish-step\"}")
        {
            beforeFinish.Add(line!);
        }

        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.False(ended.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(0.1));

        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Assert.Equal("{\"type\":\"finish\"}", parts[^3]);
        Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", "persistence_unacknowledged");
        Assert.Equal(StreamOutcome.PersistenceUnacknowledged, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task UpstreamsOwnPersistenceError_CountsAsFailed_AndNoSecondErrorIsAdded()
    {
        await using var sidecar = await StartSidecarAsync("InBand");
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario persist-error");
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        Assert.Equal(Chat.Text(record.SentBytes()), Chat.Text(body));
        Assert.Equal(StreamOutcome.PersistenceFailed, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task UpstreamErrorBeforeFinish_FinishIsNotHeld_AndNoSecondErrorIsAdded()
    {
        await using var sidecar = await StartSidecarAsync("InBand");
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario stream-error-finish:5");
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        // Nothing waits for an acknowledgment of an answer that already failed.
        Assert.Equal(Chat.Text(record.SentBytes()), Chat.Text(body));
        Assert.Equal(StreamOutcome.UpstreamErrorPart, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task UpstreamResetWhileFinishIsHeld_TheDeadlineStillDecides()
    {
        await using var sidecar = await StartSidecarAsync("InBand", _time);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        // Frames: start, start-step, text-start, 2 deltas, text-end, finish-step, finish (7), then a reset.
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:2 ack:saved gate:8 drop:8");
        var pump = await sidecar.HeldFinishAsync(session);
        call.Record.ReleaseGate();
        Assert.Equal(AnswerStatus.Dropped, await call.Record.Ended.DefaultTimeout());
        _time.Advance(TimeSpan.FromSeconds(5));

        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Assert.Equal("{\"type\":\"finish\"}", parts[^3]);
        Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", "persistence_unacknowledged");
        Assert.Equal(StreamOutcome.PersistenceUnacknowledged, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task StopWhileFinishIsHeld_TheAckStillDecides_SavedEndsAsCompleted()
    {
        await using var sidecar = await StartSidecarAsync("Callback");
        using var management = new HttpClient { BaseAddress = sidecar.ManagementAddress };
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:2 gate:8");
        var pump = await sidecar.HeldFinishAsync(session);

        // The user presses stop while the save is pending; then the service acknowledges it.
        using var stop = await client.SendAsync(Chat.Stop(session)).DefaultTimeout();
        Assert.True(stop.IsSuccessStatusCode, stop.StatusCode.ToString());
        Assert.False(ended.IsCompleted);
        Assert.Equal(HttpStatusCode.Accepted, (await PostAckAsync(management, pump.State.MessageId!, "{\"status\":\"saved\"}")).StatusCode);

        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Assert.Equal(["{\"type\":\"finish-step\"}", "{\"type\":\"finish\"}", "[DONE]"], parts[^3..]);
        Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
        await StoreProbe.WaitForEndAsync(sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        Assert.Equal(HttpStatusCode.NoContent, resumed.StatusCode);
    }

    [Fact]
    public async Task StopWhileFinishIsHeld_NoAck_ThePersistenceErrorIsStoredForResumers()
    {
        await using var sidecar = await StartSidecarAsync("Callback", _time);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:2 gate:8");
        var pump = await sidecar.HeldFinishAsync(session);

        using var stop = await client.SendAsync(Chat.Stop(session)).DefaultTimeout();
        _time.Advance(TimeSpan.FromSeconds(5));

        var live = Chat.Text(await call.Reader.ReadToEndAsync());
        Endings.AssertErrorEnding(Endings.Parts(live), "SERVER_ERROR", "persistence", "persistence_unacknowledged");
        Assert.Equal(StreamOutcome.PersistenceUnacknowledged, (await ended.DefaultTimeout()).Outcome);
        await StoreProbe.WaitForEndAsync(sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        Assert.Equal(live, await resumed.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ShutdownWhileFinishIsHeld_DecidesAtTheDrainDeadline_NotAfterTheAckTimeout()
    {
        await using var sidecar = await StartSidecarAsync("InBand", _time, new() { ["Sidecar:Persistence:AckTimeout"] = "00:05:00" });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:2 ack:saved gate:8");
        var pump = await sidecar.HeldFinishAsync(session);

        var stopping = sidecar.StopAsync();
        _time.Advance(TimeSpan.FromSeconds(20));

        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", "persistence_unacknowledged");
        Assert.Equal(StreamOutcome.PersistenceUnacknowledged, (await ended.DefaultTimeout()).Outcome);
        await stopping.DefaultTimeout();
    }

    /// <summary>
    /// A fast upstream may finish and call back before this replica has opened the stream's wait
    /// (its headers still on their way through the proxy): the ack is not lost.
    /// </summary>
    [Fact]
    public async Task Callback_BeforeTheStreamsWaitOpens_ReachesTheWaitOnceTheStreamIsRegistered()
    {
        await using var sidecar = await StartSidecarAsync("Callback", _time);
        var acks = sidecar.Services.GetRequiredService<PersistenceAcks>();
        var store = sidecar.Services.GetRequiredService<IStreamStore>();
        const string messageId = "m-acked-early";

        var delivering = acks.DeliverAsync(messageId, new PersistenceAck(AckStatus.Saved, "callback"), CancellationToken.None);
        Assert.False(delivering.IsCompleted);
        var (waiter, _, _) = acks.Open(new ChatExchange("c010", "s-acked-early", "r-1", "owner"), messageId);
        await store.WriteAsync([new StreamWrite(messageId) { Begin = new StreamRegistration(messageId, "s-acked-early", "c010", "owner", "replica", _time.GetUtcNow().AddMinutes(1)) }], default);
        _time.Advance(TimeSpan.FromMilliseconds(50));

        Assert.Equal(AckDelivery.Forwarded, await delivering.DefaultTimeout());
        Assert.Equal(AckStatus.Saved, (await waiter!.Result.DefaultTimeout())!.Status);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Callback_ForAStreamNotYetRegistered_WaitsAsLongAsItsClientMay(bool registered)
    {
        // The stream's client and pump wait for its registration for the store's operation timeout
        // (2 s): a callback to another replica waits as long for the store to know the message
        // before it answers 404.
        var poll = TimeSpan.FromMilliseconds(50);
        var time = new WatchedTimers(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero), poll);
        await using var sidecar = await StartSidecarAsync("Callback", time);
        var acks = sidecar.Services.GetRequiredService<PersistenceAcks>();
        var store = sidecar.Services.GetRequiredService<IStreamStore>();
        const string messageId = "m-registered-late";
        var operationTimeout = new StreamStoreOptions().OperationTimeout;

        var delivering = acks.DeliverAsync(messageId, new PersistenceAck(AckStatus.Saved, "callback"), CancellationToken.None);
        for (var waited = TimeSpan.Zero; waited < operationTimeout - poll; waited += poll)
        {
            // Its next poll, not its answer.
            var polled = time.Created.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan);
            Assert.True(await Task.WhenAny(polled, delivering) == polled && await polled, $"answered after {waited.TotalMilliseconds} ms");
            time.Advance(poll);
        }

        Assert.True(await time.Created.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
        if (registered)
        {
            await store.WriteAsync([new StreamWrite(messageId) { Begin = new StreamRegistration(messageId, "s-registered-late", "c010", "owner", "replica", time.GetUtcNow().AddMinutes(1)) }], default);
        }

        time.Advance(poll);
        Assert.Equal(registered ? AckDelivery.Forwarded : AckDelivery.Unknown, await delivering.DefaultTimeout());
    }

    [Fact]
    public async Task Callback_Saved_ClientGetsTheAnswerUnchanged_AndTheCallbackIsAccepted()
    {
        await using var sidecar = await StartSidecarAsync("Callback");
        UseCallbackOf(sidecar);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario callback:saved");
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        Assert.Equal(Chat.Text(record.SentBytes()), Chat.Text(body));
        await record.Ended.DefaultTimeout();
        Assert.Equal(202, record.CallbackStatus);
    }

    [Theory]
    [InlineData("callback:failed", "persistence_failed")]
    [InlineData("callback-early:failed", "persistence_failed")]
    public async Task Callback_Failed_EvenBeforeFinish_ClientGetsThePersistenceError(string scenario, string reason)
    {
        await using var sidecar = await StartSidecarAsync("Callback");
        UseCallbackOf(sidecar);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        using var response = await client.SendAsync(Chat.Post(session, "/scenario " + scenario), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var parts = Endings.Parts(Chat.Text(await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync()));

        Assert.Equal("{\"type\":\"finish\"}", parts[^3]);
        Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", reason);
        // The emulator's handler ends after the callback's answer (the client may have its ending before).
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();
        await record.Ended.DefaultTimeout();
        Assert.Equal(202, record.CallbackStatus);
    }

    [Theory]
    [InlineData("callback:saved", false)]
    [InlineData("callback:failed", true)]
    [InlineData("callback-early:failed", true)]
    public async Task Callback_ReceivedByAnotherReplica_ReachesTheReplicaHoldingTheStream(string scenario, bool failed)
    {
        var shared = new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = RedisServer.NewPrefix(),
        };
        await using var replicaA = await StartSidecarAsync("Callback", settings: shared);
        await using var replicaB = await StartSidecarAsync("Callback", settings: shared);
        UseCallbackOf(replicaB);
        using var client = replicaA.CreateClient();
        var session = Chat.NewSession();
        var ended = replicaA.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario " + scenario);
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        // The emulator's handler ends after the callback's answer (the client may have its ending before).
        await record.Ended.DefaultTimeout();
        Assert.Equal(202, record.CallbackStatus);
        if (failed)
        {
            Endings.AssertErrorEnding(Endings.Parts(Chat.Text(body)), "SERVER_ERROR", "persistence", "persistence_failed");
            Assert.Equal(StreamOutcome.PersistenceFailed, (await ended.DefaultTimeout()).Outcome);
        }
        else
        {
            Assert.Equal(Chat.Text(record.SentBytes()), Chat.Text(body));
            Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
        }
    }

    /// <summary>
    /// A pod draining after its readiness turned: the Service sends the service's callbacks to
    /// another replica, which forwards them through the store. Streams whose clients have left
    /// drain after the listeners close; their acknowledgments must still reach them.
    /// </summary>
    [Fact]
    public async Task Callback_ToAnotherReplica_WhileThisOneDrains_StillDecidesTheHeldFinish()
    {
        var shared = new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = RedisServer.NewPrefix(),
        };
        // Registered after the sidecar's services, so it stops before them: once it has, the host
        // is stopping the sidecar's own services.
        var reached = new StopReached();
        await using var replicaA = await StartSidecarAsync("Callback", _time, shared, services => services.AddHostedService(_ => reached));
        await using var replicaB = await StartSidecarAsync("Callback", settings: shared);
        using var management = new HttpClient { BaseAddress = replicaB.ManagementAddress };
        using var client = replicaA.CreateClient();
        var session = Chat.NewSession();
        var ended = replicaA.PumpEnded(session);
        var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:2");
        var pump = await replicaA.HeldFinishAsync(session);
        call.Dispose();

        var stopping = replicaA.StopAsync();
        await reached.Task.DefaultTimeout();
        Assert.Equal(HttpStatusCode.Accepted, (await PostAckAsync(management, pump.State.MessageId!, "{\"status\":\"saved\"}")).StatusCode);

        // Decided by the ack, not at the drain deadline (the fake clock never gets there).
        Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
        await stopping.DefaultTimeout();
    }

    /// <summary>
    /// The service writes its resume error after finish when its own resume registration fails;
    /// it comes before the save's callback and says nothing of the save.
    /// </summary>
    [Theory]
    [InlineData("callback:saved resume-error", false)]
    [InlineData("callback:failed resume-error", true)]
    public async Task Callback_TheUpstreamsResumeErrorAfterFinish_DoesNotDecideTheSave(string scenario, bool failed)
    {
        await using var sidecar = await StartSidecarAsync("Callback");
        UseCallbackOf(sidecar);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario " + scenario);
        var (body, record) = (answer.Body, answer.Record);

        await record.Ended.DefaultTimeout();
        Assert.Equal(202, record.CallbackStatus);
        if (failed)
        {
            // The failed save is the first error the client reads; the resume error is not sent.
            var parts = Endings.Parts(Chat.Text(body));
            Assert.Equal("{\"type\":\"finish\"}", parts[^3]);
            Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", "persistence_failed");
            Assert.DoesNotContain(parts, p => p.Contains("stream resume", StringComparison.Ordinal));
            Assert.Equal(StreamOutcome.PersistenceFailed, (await ended.DefaultTimeout()).Outcome);
        }
        else
        {
            Assert.Equal(Chat.Text(record.SentBytes()), Chat.Text(body));
            Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
        }
    }

    [Fact]
    public async Task Probe_NeverSaved_ThePersistenceErrorGoesBeforeTheUpstreamsResumeError()
    {
        await using var sidecar = await StartSidecarAsync("Probe", _time);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario save:failed resume-error deltas:2");
        var pump = await sidecar.HeldFinishAsync(session);
        // The upstream's resume error and [DONE] are read (held behind finish) before the deadline.
        Assert.True(SpinWait.SpinUntil(() => pump.State.DoneSeen, TaskTimeoutExtensions.DefaultTimeoutSpan));

        _time.Advance(TimeSpan.FromSeconds(5));

        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Assert.Equal("{\"type\":\"finish\"}", parts[^3]);
        Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", "persistence_unacknowledged");
        Assert.DoesNotContain(parts, p => p.Contains("stream resume", StringComparison.Ordinal));
        Assert.Equal(StreamOutcome.PersistenceUnacknowledged, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task Callback_AuthenticationIdsBodiesAndUnknownMessages_AreRefusedWithTypedErrors()
    {
        // Its stream is never acknowledged: the 5 s deadline ends it.
        await using var sidecar = await StartSidecarAsync("Callback", settings: new() { ["Sidecar:Persistence:AckTimeout"] = "00:00:05" });
        using var management = new HttpClient { BaseAddress = sidecar.ManagementAddress };
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        using var streamed = await client.SendAsync(Chat.Post(session, "/scenario deltas:1")).DefaultTimeout();
        var messageId = streamed.Headers.GetValues("x-message-id").Single();

        Assert.Equal(HttpStatusCode.Unauthorized, (await PostAckAsync(management, messageId, "{\"status\":\"saved\"}", token: null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await PostAckAsync(management, messageId, "{\"status\":\"saved\"}", token: "wrong-token-0123456789")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAckAsync(management, messageId, "{\"status\":\"maybe\"}")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAckAsync(management, messageId, "not json")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAckAsync(management, messageId, "{\"status\":\"saved\",\"error\":\"" + new string('x', 5000) + "\"}")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAckAsync(management, "bad%20id", "{\"status\":\"saved\"}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await PostAckAsync(management, "unknownmessage01", "{\"status\":\"saved\"}")).StatusCode);
        using var unauthorized = await PostAckAsync(management, messageId, "{\"status\":\"saved\"}", token: null);
        ErrorJson.AssertContractShape(await ErrorJson.ReadAsync(unauthorized), "AUTHENTICATION", 401);
        Assert.Equal("Bearer", unauthorized.Headers.WwwAuthenticate.Single().Scheme);

        // A known (finished) message: accepted, and a duplicate is as harmless.
        Assert.Equal(HttpStatusCode.Accepted, (await PostAckAsync(management, messageId, "{\"status\":\"saved\"}")).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await PostAckAsync(management, messageId, "{\"status\":\"saved\"}")).StatusCode);
    }

    [Fact]
    public async Task Callback_DuplicateAndLateAcks_ChangeNothing()
    {
        await using var sidecar = await StartSidecarAsync("Callback", _time);
        using var management = new HttpClient { BaseAddress = sidecar.ManagementAddress };
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:2");
        var pump = await sidecar.HeldFinishAsync(session);

        Assert.Equal(HttpStatusCode.Accepted, (await PostAckAsync(management, pump.State.MessageId!, "{\"status\":\"saved\"}")).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await PostAckAsync(management, pump.State.MessageId!, "{\"status\":\"failed\"}")).StatusCode);
        var body = await call.Reader.ReadToEndAsync();

        Assert.Equal(Chat.Text(call.Record.SentBytes()), Chat.Text(body));
        Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
        Assert.Equal(HttpStatusCode.Accepted, (await PostAckAsync(management, pump.State.MessageId!, "{\"status\":\"failed\"}")).StatusCode);
    }

    [Fact]
    public async Task Probe_SavedAfterAWhile_FinishGoesOutOnceTheProbeSeesIt()
    {
        await using var sidecar = await StartSidecarAsync("Probe", settings: new()
        {
            ["Sidecar:Persistence:ProbeRetryDelay"] = "00:00:00.020",
            ["Sidecar:Persistence:ProbeMaxRetryDelay"] = "00:00:00.050",
        });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario saved-after:200");
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        Assert.Equal(Chat.Text(record.SentBytes()), Chat.Text(body));
        Assert.Equal(StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task Probe_NeverSaved_ThePersistenceErrorFollowsAtTheDeadline()
    {
        await using var sidecar = await StartSidecarAsync("Probe", _time);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario save:failed deltas:2");
        var pump = await sidecar.HeldFinishAsync(session);

        _time.Advance(TimeSpan.FromSeconds(5));

        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        Endings.AssertErrorEnding(parts, "SERVER_ERROR", "persistence", "persistence_unacknowledged");
        Assert.Equal(StreamOutcome.PersistenceUnacknowledged, (await ended.DefaultTimeout()).Outcome);
    }

    [Fact]
    public async Task None_FinishPassesAtOnce_AndAnInBandPartIsForwardedAsAnyTransientPart()
    {
        await using var sidecar = await StartSidecarAsync("None");
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        using var response = await client.SendAsync(Chat.Post(session, "/scenario ack:failed"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var body = await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();

        Assert.Equal(Chat.Text((await _emulator.Journal.ForSession(session).DefaultTimeout()).SentBytes()), Chat.Text(body));
    }

    [Fact]
    public async Task Resume_OfAnAnswerWhoseSaveFailed_ReplaysTheSameEnding()
    {
        await using var sidecar = await StartSidecarAsync("InBand", settings: new() { ["Sidecar:Resume:EventIds"] = "true" });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        using var response = await client.SendAsync(Chat.Post(session, "/scenario ack:failed"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var live = await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();
        await StoreProbe.WaitForEndAsync(sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        Assert.Equal(Chat.Text(live), await resumed.Content.ReadAsStringAsync());
    }

    private async Task<SidecarServer> StartSidecarAsync(string mode, TimeProvider? time = null, Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        var all = new Dictionary<string, string?>
        {
            ["Sidecar:Persistence:Mode"] = mode,
            ["Sidecar:Persistence:CallbackToken"] = Token,
            ["Sidecar:Persistence:ProbeUrl"] = "{upstream}/api/internal/messages/{sessionId}/{messageId}",
            ["Sidecar:Resume:EventIds"] = "false",
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        };
        if (time is null)
        {
            // On the real clock, tests whose ack does come assert that it is applied, not how
            // fast: a loaded machine (the whole suite on two cores) must not turn a late callback
            // into "unacknowledged". Deadline tests run on the fake clock with the 5 s default.
            all["Sidecar:Persistence:AckTimeout"] = "00:00:20";
        }

        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }

        return await SidecarServer.StartAsync(_emulator.Address, all, time, services: services);
    }

    private void UseCallbackOf(SidecarServer sidecar)
    {
        _emulator.Options.AckCallbackUrl = new Uri(sidecar.ManagementAddress, "/sidecar/v1/acks/{messageId}").ToString().Replace("%7B", "{", StringComparison.Ordinal).Replace("%7D", "}", StringComparison.Ordinal);
        _emulator.Options.AckCallbackToken = Token;
    }

    private static Task<HttpResponseMessage> PostAckAsync(HttpClient management, string messageId, string json, string? token = Token)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/sidecar/v1/acks/" + messageId)
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return management.SendAsync(request).DefaultTimeout();
    }

    private sealed class StopReached : TaskCompletionSource, IHostedService
    {
        public StopReached()
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
        }

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken)
        {
            TrySetResult();
            return Task.CompletedTask;
        }
    }
}
