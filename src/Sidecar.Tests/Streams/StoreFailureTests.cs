using System.Net;
using System.Text.Json;
using ChatUpstream;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>A real redis-server of the test's own, killed and restarted under a live answer.</summary>
public sealed class StoreFailureTests : IAsyncLifetime, IDisposable
{
    private OwnedRedis _redis = null!;
    private EmulatorServer _emulator = null!;

    public async Task InitializeAsync()
    {
        _redis = new OwnedRedis();
        _redis.Start();
        _emulator = await EmulatorServer.StartAsync();
    }

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    public void Dispose() => _redis.Dispose();

    [Fact]
    public async Task RedisKilledMidStream_AnswerIsWhole_ResumeLossIsSaid_AndTeeingComesBackWithRedis()
    {
        await using var sidecar = await StartSidecarAsync("ErrorPart");
        using var client = sidecar.CreateClient();
        using var lost = new InstrumentCounter(sidecar, "sidecar.store.lost");
        var store = sidecar.Services.GetRequiredService<IStreamStore>();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3 deltas:20");
        for (var i = 0; i < 3; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        _redis.Kill();
        await lost.WaitForTotalAsync(1).DefaultTimeout();
        call.Record.ReleaseGate();
        var body = await call.Reader.ReadToEndAsync();

        // Every upstream event, in order, with the resume error part before [DONE].
        Assert.Equal(AnswerStatus.Completed, await call.Record.Ended.DefaultTimeout());
        var upstream = Chat.Events(call.Record.SentBytes());
        var expectedStart = Chat.WithIds(upstream[..^1]);
        var expectedEnd = Chat.WithIds([upstream[^1]], upstream.Count - 1);
        Assert.Equal(expectedStart, body[..expectedStart.Length]);
        Assert.Equal(expectedEnd, body[^expectedEnd.Length..]);
        var injected = Chat.Text(body[expectedStart.Length..^expectedEnd.Length]);
        AssertErrorPart(injected, "resume", "We couldn't enable stream resume for this session.");

        // While Redis is down, a resume says so, typed.
        using var resumeWhileDown = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, resumeWhileDown.StatusCode);
        Assert.Equal("resume", (await ErrorJson.ReadAsync(resumeWhileDown)).GetProperty("category").GetString());

        // Redis returns: the sidecar reconnects by itself and new answers are stored again.
        var back = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.Available += () => back.TrySetResult();
        _redis.Start();
        await back.Task.DefaultTimeout();
        var next = Chat.NewSession();
        using var again = await Chat.StartAsync(client, _emulator, next, "/scenario gate:2");
        await StoreProbe.WaitForEventsAsync(store, next, 2);
        using var resumed = await client.SendAsync(Chat.Resume(next), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        again.Record.ReleaseGate();
        Assert.Equal(await again.Reader.ReadToEndAsync(), await resumed.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task RedisPausedMidStream_TheAnswerFlowsWhole_AndTheStoredCopyIsWhole_WithNothingLostOrRepeated()
    {
        await using var sidecar = await StartSidecarAsync("ErrorPart");
        using var client = sidecar.CreateClient();
        using var lost = new InstrumentCounter(sidecar, "sidecar.store.lost");
        var session = Chat.NewSession();
        var (call, body) = await AnswerThroughARedisPauseAsync(client, session);
        using var answered = call;

        // The live answer did not wait for Redis: every upstream event, as sent, and no resume error.
        Assert.Equal(Chat.Text(Chat.WithIds(Chat.Events(call.Record.SentBytes()))), Chat.Text(body));

        // Once Redis answers again, the timed-out batches, sent again (and some landing late as
        // well), leave every event stored exactly once and the stream completed.
        using var connection = OpenStore(out var reader);
        var messageId = call.Response.Headers.GetValues("x-message-id").Single();
        var stored = await WaitForStoredAsync(reader, messageId, s => s.State != StoredStreamState.Live);

        Assert.Equal(StoredStreamState.Completed, stored.State);
        Assert.False(stored.Incomplete);
        var events = await reader.ReadAsync(messageId, 0, 1000, default);
        Assert.Equal(Enumerable.Range(0, events.Count).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.Equal(Chat.Events(call.Record.SentBytes()).Select(Chat.Text), events.Select(e => Chat.Text(e.Raw.ToArray())));
        Assert.Equal(0, lost.Total);
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        Assert.Equal(HttpStatusCode.NoContent, resumed.StatusCode);
    }

    [Fact]
    public async Task RedisStalledPastTheRetryWindow_TheStoredCopyIsMarkedIncomplete_NeverLeftLive()
    {
        await using var sidecar = await StartSidecarAsync("ErrorPart", new() { ["Sidecar:Store:WriteRetryWindow"] = "00:00:00.600" });
        using var client = sidecar.CreateClient();
        using var lost = new InstrumentCounter(sidecar, "sidecar.store.lost");
        var session = Chat.NewSession();
        var (call, body) = await AnswerThroughARedisPauseAsync(client, session);
        using var answered = call;
        await lost.WaitForTotalAsync(1).DefaultTimeout();
        Assert.Equal(Chat.Text(Chat.WithIds(Chat.Events(call.Record.SentBytes()))), Chat.Text(body));

        // Retries gave up before Redis answered: once it does, the stored copy is not left live
        // (its end is written again, marked incomplete) and a resume is a typed 503 at once.
        using var connection = OpenStore(out var reader);
        var messageId = call.Response.Headers.GetValues("x-message-id").Single();
        var stored = await WaitForStoredAsync(reader, messageId, s => s.State != StoredStreamState.Live || s.Incomplete);

        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        if (stored.State == StoredStreamState.Completed)
        {
            // The queued writes landed late, whole: a completed answer is "no stream" to a resume.
            Assert.Equal(HttpStatusCode.NoContent, resumed.StatusCode);
        }
        else
        {
            Assert.True(stored.Incomplete);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, resumed.StatusCode);
            Assert.Equal("resume", (await ErrorJson.ReadAsync(resumed)).GetProperty("category").GetString());
        }
    }

    [Fact]
    public async Task RedisDownBeforeTheAnswer_DataPartMode_SaysItAfterStart_AndTheAnswerIsWhole()
    {
        await using var sidecar = await StartSidecarAsync("DataPart");
        using var client = sidecar.CreateClient();
        await KillRedisAsync(sidecar.Services.GetRequiredService<IStreamStore>());

        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario deltas:5");
        var events = Chat.Events(await call.Reader.ReadToEndAsync()).Select(Chat.Text).ToList();

        var upstream = Chat.Events(call.Record.SentBytes()).Select(Chat.Text).ToList();
        var said = Assert.Single(events, e => e.Contains("data-resume-unavailable", StringComparison.Ordinal));
        Assert.Equal($"data: {{\"type\":\"data-resume-unavailable\",\"data\":{{\"messageId\":\"{call.Record.MessageId}\"}},\"transient\":true}}\n\n", said);
        // Right after `start`: the first moment there is a message for it to belong to.
        Assert.Equal(1, events.IndexOf(said));
        Assert.Equal(upstream, events.Where(e => e != said).Select(e => e[(e.IndexOf('\n', StringComparison.Ordinal) + 1)..]));
    }

    [Fact]
    public async Task RedisDown_FailFastMode_RefusesNewAnswersBeforeTheUpstream()
    {
        await using var sidecar = await StartSidecarAsync("FailFast");
        using var client = sidecar.CreateClient();
        await KillRedisAsync(sidecar.Services.GetRequiredService<IStreamStore>());
        var session = Chat.NewSession();

        using var response = await client.SendAsync(Chat.Post(session, "hello")).DefaultTimeout();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        ErrorJson.AssertContractShape(await ErrorJson.ReadAsync(response), "SERVICE_UNAVAILABLE", 503);
        Assert.False(_emulator.Journal.ForSession(session).IsCompleted);
    }

    [Fact]
    public async Task RedisDown_ClientThatStopsReading_IsCutOff_AndTheUpstreamStillDrained()
    {
        // With no stored copy to read on from, a client that falls too far behind is cut off.
        await using var sidecar = await StartSidecarAsync("ErrorPart", new() { ["Sidecar:Streams:MaxClientBacklogBytes"] = "65536" });
        using var client = sidecar.CreateClient();
        await KillRedisAsync(sidecar.Services.GetRequiredService<IStreamStore>());
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);
        using var cutOff = new InstrumentCounter(sidecar, "sidecar.client.disconnected");

        var sending = client.SendAsync(Chat.Post(session, "/scenario deltas:2000 delta-bytes:10000"), HttpCompletionOption.ResponseHeadersRead);
        var (pump, outcome) = await ended.DefaultTimeout();
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();

        Assert.True(outcome == StreamOutcome.Completed, $"{outcome}\n{sidecar.Logs.Text}");
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        Assert.Equal(record.TotalFrames, pump.State.Events);
        Assert.True(pump.IsLiveCut);
        await cutOff.WaitForTotalAsync(1).DefaultTimeout();
        var failure = await Record.ExceptionAsync(async () =>
        {
            using var response = await sending;
            await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();
        });
        Assert.True(failure is HttpRequestException or IOException, failure?.ToString());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task StopOrResume_RightAfterTheHeaders_WhileRedisHoldsTheRegistration_FindTheNewStream(bool stop)
    {
        // Redis takes no writes for 6 s (its reads on the sidecar's connection queue behind them):
        // the stream's registration waits, retried for up to 9 s, and the client's headers go out
        // without it after the operation timeout (500 ms). A stop or a resume on the same replica
        // then waits for the registration rather than find no stream in the store (or time out).
        await using var sidecar = await StartSidecarAsync("ErrorPart", new() { ["Sidecar:Store:WriteRetryWindow"] = "00:00:09" });
        using var client = sidecar.CreateClient();
        await ConnectedAsync(sidecar.Services.GetRequiredService<IStreamStore>());
        var session = Chat.NewSession();
        await PauseRedisAsync(6000, "WRITE");

        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3 deltas:5");
        await call.Record.GateReached.DefaultTimeout();
        var registering = sidecar.Services.GetRequiredService<StoreWriter>().Registering(session);
        Assert.True(registering is { RegistrationWritten.IsCompleted: false }, "the registration was written before the test could stop or resume (a slow start)");

        // Someone else's call does not wait for it.
        using var stranger = await client.SendAsync(stop ? Chat.Stop(session, bearer: "token-of-mallory") : Chat.Resume(session, bearer: "token-of-mallory")).DefaultTimeout();
        Assert.False(registering.RegistrationWritten.IsCompleted);

        if (stop)
        {
            // 204 either way: the abort part and the upstream's end show that it stopped.
            using var stopped = await client.SendAsync(Chat.Stop(session)).DefaultTimeout();
            Assert.Equal(HttpStatusCode.NoContent, stopped.StatusCode);
            Assert.Equal(AnswerStatus.ReaderGone, await call.Record.Ended.DefaultTimeout());
            Assert.Equal(["{\"type\":\"abort\"}", "[DONE]"], Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()))[^2..]);
        }
        else
        {
            using var resumed = await client.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
            Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
            call.Record.ReleaseGate();
            var live = await call.Reader.ReadToEndAsync();
            Assert.Equal(live, await new TestEventReader(await resumed.Content.ReadAsStreamAsync()).ReadToEndAsync());
            Assert.Equal(Chat.WithIds(Chat.Events(call.Record.SentBytes())), live);
        }
    }

    /// <summary>
    /// Starts an answer, reads its first three events, pauses every Redis client for 3 s (store
    /// calls time out after 500 ms), lets the answer go on and reads it to its end.
    /// </summary>
    private async Task<(ChatCall Call, byte[] Body)> AnswerThroughARedisPauseAsync(HttpClient client, string session)
    {
        var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3 deltas:20");
        for (var i = 0; i < 3; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        await PauseRedisAsync(3000, "ALL");

        call.Record.ReleaseGate();
        return (call, await call.Reader.ReadToEndAsync());
    }

    /// <summary>
    /// The session's pointer to its active stream lives in another hash slot (on a Cluster, maybe
    /// another node). Refused there, it must not pass as written: the session would still point to
    /// its previous stream, and a reload would resume that.
    /// </summary>
    [Fact]
    public async Task SessionPointerRefused_TheStreamLosesResume_RatherThanLeaveTheOldPointer()
    {
        // A user that may do everything but SET (the pointer is written with SET ... PX).
        await RedisCliAsync("ACL", "SETUSER", "nopointer", "on", ">no-pointer-password", "~*", "&*", "+@all", "-set", "-setex", "-psetex");
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = _redis.Configuration + ",user=nopointer,password=no-pointer-password",
            ["Sidecar:Store:KeyPrefix"] = _prefix,
            ["Sidecar:Store:OperationTimeout"] = "00:00:00.500",
            ["Sidecar:Store:WriteRetryWindow"] = "00:00:00.300",
            ["Sidecar:Resume:UnavailableSignal"] = "ErrorPart",
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        });
        using var client = sidecar.CreateClient();
        using var lost = new InstrumentCounter(sidecar, "sidecar.store.lost");
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3 deltas:5");

        await lost.WaitForTotalAsync(1).DefaultTimeout();
        call.Record.ReleaseGate();
        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));

        // The live client hears that resume is lost: the resume error part before [DONE].
        Assert.Equal("[DONE]", parts[^1]);
        AssertErrorPart("data: " + parts[^2] + "\n\n", "resume", "We couldn't enable stream resume for this session.");

        // In one batch, only the write whose pointer was refused is not applied.
        using var connection = OpenStore(out var store, _redis.Configuration + ",user=nopointer,password=no-pointer-password");
        using var allowed = OpenStore(out var registrar);
        var registration = new StreamRegistration("m-registered", "s-registered", "c010", "owner", "replica", DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.All(await registrar.WriteAsync([new StreamWrite("m-registered") { Begin = registration }], CancellationToken.None), Assert.True);
        var appended = new StreamWrite("m-registered");
        appended.Events.Add(new StoredEvent(0, "data: {}\n\n"u8.ToArray()));
        var applied = await store.WriteAsync(
            [new StreamWrite("m-new") { Begin = registration with { MessageId = "m-new", SessionId = "s-new" } }, appended],
            CancellationToken.None);
        Assert.Equal([false, true], applied);
    }

    /// <summary>Runs a command on the test's Redis.</summary>
    private async Task RedisCliAsync(params string[] command)
    {
        using var cli = System.Diagnostics.Process.Start("redis-cli", ["-p", _redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. command]);
        await cli.WaitForExitAsync().DefaultTimeout();
        Assert.Equal(0, cli.ExitCode);
    }

    /// <summary>Pauses the clients of the test's Redis (<c>CLIENT PAUSE</c>, <paramref name="mode"/> ALL or WRITE) for <paramref name="milliseconds"/>.</summary>
    private Task PauseRedisAsync(int milliseconds, string mode) =>
        RedisCliAsync("CLIENT", "PAUSE", milliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture), mode);

    /// <summary>A store of the test's own on the sidecar's Redis, to look at what it stored.</summary>
    private RedisConnection OpenStore(out RedisStreamStore store, string? configuration = null)
    {
        var options = Microsoft.Extensions.Options.Options.Create(new StreamStoreOptions { Redis = configuration ?? _redis.Configuration, KeyPrefix = _prefix, OperationTimeout = TimeSpan.FromSeconds(5) });
        var connection = new RedisConnection(options);
        store = new RedisStreamStore(connection, options, Microsoft.Extensions.Options.Options.Create(new Sidecar.Streams.StreamOptions()), TimeProvider.System);
        return connection;
    }

    /// <summary>Follows a stored stream until its record is <paramref name="settled"/>, and returns that record.</summary>
    private static async Task<StreamRecord> WaitForStoredAsync(RedisStreamStore store, string messageId, Func<StreamRecord, bool> settled)
    {
        await using var follower = await store.FollowAsync(messageId, default).DefaultTimeout();
        using var timeout = new CancellationTokenSource(TaskTimeoutExtensions.DefaultTimeoutSpan);
        while (true)
        {
            var mark = follower.Mark;
            if (await store.GetAsync(messageId, timeout.Token) is { } stored && settled(stored))
            {
                return stored;
            }

            await follower.WaitAsync(mark, TimeSpan.FromSeconds(1), timeout.Token);
        }
    }

    private readonly string _prefix = RedisServer.NewPrefix();

    private Task<SidecarServer> StartSidecarAsync(string signal, Dictionary<string, string?>? extra = null) =>
        SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>(extra ?? [])
        {
            ["Sidecar:Store:Redis"] = _redis.Configuration,
            ["Sidecar:Store:KeyPrefix"] = _prefix,
            ["Sidecar:Store:OperationTimeout"] = "00:00:00.500",
            ["Sidecar:Resume:UnavailableSignal"] = signal,
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        });

    /// <summary>Kills Redis under a connected store and waits until the store has noticed.</summary>
    private async Task KillRedisAsync(IStreamStore store)
    {
        await ConnectedAsync(store);
        var down = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.Unavailable += () => down.TrySetResult();
        _redis.Kill();
        await down.Task.DefaultTimeout();
    }

    /// <summary>Waits until the sidecar's store has its Redis connection.</summary>
    private static async Task ConnectedAsync(IStreamStore store)
    {
        // A first connection raises no event: a read completes once it is made.
        await store.GetAsync("probe", CancellationToken.None).DefaultTimeout();

        Assert.True(store.IsAvailable);
    }

    private static void AssertErrorPart(string evt, string category, string message)
    {
        Assert.StartsWith("data: ", evt, StringComparison.Ordinal);
        Assert.EndsWith("\n\n", evt, StringComparison.Ordinal);
        using var part = JsonDocument.Parse(evt["data: ".Length..^2]);
        Assert.Equal(["type", "errorText"], part.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("error", part.RootElement.GetProperty("type").GetString());
        using var error = JsonDocument.Parse(part.RootElement.GetProperty("errorText").GetString()!);
        Assert.Equal(category, error.RootElement.GetProperty("category").GetString());
        Assert.Equal(message, error.RootElement.GetProperty("message").GetString());
        Assert.Equal("sidecar", error.RootElement.GetProperty("source").GetString());
    }
}
