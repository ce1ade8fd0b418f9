using System.Globalization;
using System.Net;
using ChatUpstream;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>Two sidecar replicas on one real Redis: a stream produced through A is resumed through B.</summary>
public sealed class RedisResumeTests : IAsyncLifetime
{
    private EmulatorServer _emulator = null!;
    private SidecarServer _replicaA = null!;
    private SidecarServer _replicaB = null!;
    private string _prefix = null!;

    public async Task InitializeAsync()
    {
        _emulator = await EmulatorServer.StartAsync();
        var shared = new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = _prefix = RedisServer.NewPrefix(),
            // Longer than the test timeout: a follower that only polled, missing notifications, fails.
            ["Sidecar:Resume:FollowPollInterval"] = "00:01:00",
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        };
        _replicaA = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>(shared) { ["Sidecar:Resume:ReplicaId"] = "a" });
        _replicaB = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>(shared) { ["Sidecar:Resume:ReplicaId"] = "b" });
    }

    public async Task DisposeAsync()
    {
        await _replicaA.DisposeAsync();
        await _replicaB.DisposeAsync();
        await _emulator.DisposeAsync();
    }

    [Fact]
    public async Task Resume_OnAnotherReplica_ReplaysAndFollowsLiveThroughRedis()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        var ended = _replicaA.PumpEnded(session);
        using var call = await Chat.StartAsync(clientA, _emulator, session, "/scenario gate:6 deltas:50 artifact");
        for (var i = 0; i < 6; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        await StoreProbe.WaitForEventsAsync(_replicaB.Services.GetRequiredService<IStreamStore>(), session, 6);
        using var resumed = await clientB.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var replay = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        for (var i = 0; i < 6; i++)
        {
            Assert.StartsWith($"id: {i}\n", await replay.NextAsync());
        }

        // Live from here: every further event reaches B through Redis notifications.
        call.Record.ReleaseGate();
        var live = await call.Reader.ReadToEndAsync();
        var followed = await replay.ReadToEndAsync();
        await ended.DefaultTimeout();

        var expected = Chat.WithIds(Chat.Events(call.Record.SentBytes()));
        Assert.Equal(expected, live);
        Assert.Equal(expected, followed);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
    }

    /// <summary>
    /// The store lost an event (an operator's XDEL, a partial eviction): a resume replays up to the
    /// hole, never past it, and ends with the typed resume-unavailable error and [DONE].
    /// </summary>
    [Fact]
    public async Task Resume_StoreLostAnEvent_ReplaysUpToTheGapThenEndsResumeUnavailable()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(clientA, _emulator, session, "/scenario gate:12 deltas:30 pace:5");
        var sent = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            sent.Add((await call.Reader.NextAsync())!);
        }

        await StoreProbe.WaitForEventsAsync(_replicaB.Services.GetRequiredService<IStreamStore>(), session, 12);
        var messageId = call.Response.Headers.GetValues("x-message-id").Single();
        int kept;
        await using (var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisServer.Configuration))
        {
            // Event 5 is in the first entry at or after 0-6 (an entry holds the events of one
            // write, its id the last one's position plus one): the events before that entry are kept.
            // How the writer batched them is the machine's timing (paced 5 ms, usually a few per
            // entry), so the count is read, not assumed; the store's contract tests cover a gap
            // after a known prefix deterministically.
            var db = redis.GetDatabase();
            var key = $"{_prefix}:{{msg:{messageId}}}:events";
            var entry = (await db.StreamRangeAsync(key, "0-6", "+", count: 1)).Single();
            var lengths = entry["n"];
            kept = int.Parse(entry.Id.ToString()[2..], CultureInfo.InvariantCulture) - (lengths.IsNull ? 1 : lengths.ToString().Count(c => c == ',') + 1);
            Assert.InRange(kept, 0, 5);
            Assert.Equal(1, await db.StreamDeleteAsync(key, [entry.Id]));
        }

        using var resumed = await clientB.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var body = Chat.Text(await new TestEventReader(await resumed.Content.ReadAsStreamAsync()).ReadToEndAsync());
        call.Record.ReleaseGate();

        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        Assert.StartsWith(string.Concat(sent.Take(kept).Select(e => e + "\n\n")), body, StringComparison.Ordinal);
        var parts = Endings.Parts(body);
        Assert.Equal(kept + 2, parts.Count);
        Assert.Equal("[DONE]", parts[^1]);
        var errorText = System.Text.Json.JsonDocument.Parse(System.Text.Json.JsonDocument.Parse(parts[^2]).RootElement.GetProperty("errorText").GetString()!).RootElement;
        ErrorJson.AssertContractShape(errorText, "SERVICE_UNAVAILABLE", 503);
        Assert.Equal("RESUME_UNAVAILABLE", errorText.GetProperty("errorCode").GetString());
        Assert.Equal("resume", errorText.GetProperty("category").GetString());
    }

    [Fact]
    public async Task Resume_OnAnotherReplica_WithLastEventId_HasNoDuplicateAndNoGap()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        var call = await Chat.StartAsync(clientA, _emulator, session, "/scenario gate:9 deltas:30");
        var prefix = new List<byte>();
        for (var i = 0; i < 9; i++)
        {
            prefix.AddRange(System.Text.Encoding.UTF8.GetBytes(await call.Reader.NextAsync() + "\n\n"));
        }

        call.Dispose();
        await StoreProbe.WaitForEventsAsync(_replicaB.Services.GetRequiredService<IStreamStore>(), session, 9);
        using var resumed = await clientB.SendAsync(Chat.Resume(session, lastEventId: "8"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var rest = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        call.Record.ReleaseGate();

        byte[] rebuilt = [.. prefix, .. await rest.ReadToEndAsync()];
        Assert.Equal(AnswerStatus.Completed, await call.Record.Ended.DefaultTimeout());
        Assert.Equal(Chat.WithIds(Chat.Events(call.Record.SentBytes())), rebuilt);
    }

    [Fact]
    public async Task Resume_OnAnotherReplica_AsSoonAsTheHeadersArrive_FindsTheStream()
    {
        // A client that leaves the moment it has the headers and resumes elsewhere: the stream is
        // registered before the headers go out, so the resume never falls through to "no stream".
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        for (var round = 0; round < 5; round++)
        {
            var session = Chat.NewSession();
            var call = await Chat.StartAsync(clientA, _emulator, session, "/scenario gate:1 deltas:5");
            using var resumed = await clientB.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
            call.Dispose();
            Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
            var rest = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
            call.Record.ReleaseGate();
            var followed = await rest.ReadToEndAsync();
            Assert.Equal(AnswerStatus.Completed, await call.Record.Ended.DefaultTimeout());
            Assert.Equal(Chat.Text(Chat.WithIds(Chat.Events(call.Record.SentBytes()))), Chat.Text(followed));
        }
    }

    [Fact]
    public async Task Resume_AfterTheStreamCompleted_Is204OnEveryReplica()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        using (var call = await Chat.StartAsync(clientA, _emulator, session, "hello"))
        {
            await call.Reader.ReadToEndAsync();
        }

        // The end is written in the background: a resume in between follows the stream to its end.
        using var racing = await clientB.SendAsync(Chat.Resume(session)).DefaultTimeout();
        Assert.True(racing.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.OK);
        using var resumedOnB = await clientB.SendAsync(Chat.Resume(session)).DefaultTimeout();
        using var resumedOnA = await clientA.SendAsync(Chat.Resume(session)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, resumedOnB.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, resumedOnA.StatusCode);
    }

    [Fact]
    public async Task Stop_OnAnotherReplica_StopsTheProducer()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        var ended = _replicaA.PumpEnded(session);
        using var call = await Chat.StartAsync(clientA, _emulator, session, "/scenario gate:2");
        await call.Record.GateReached.DefaultTimeout();
        await StoreProbe.WaitForEventsAsync(_replicaB.Services.GetRequiredService<IStreamStore>(), session, 2);

        using var stop = await clientB.SendAsync(Chat.Stop(session)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        Assert.Equal(Sidecar.Streams.StreamOutcome.Stopped, (await ended.DefaultTimeout()).Outcome);
        Assert.EndsWith("data: {\"type\":\"abort\"}\n\nid: 3\ndata: [DONE]\n\n", Chat.Text(await call.Reader.ReadToEndAsync()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProducerKilled_ResumersGetTheStoredPrefixThenATerminalErrorWithinTheLease()
    {
        var prefixKey = RedisServer.NewPrefix();
        using var producer = await SidecarProcess.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = prefixKey,
            ["Sidecar:Store:LeaseDuration"] = "00:00:01",
        });
        await using var survivor = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = prefixKey,
            ["Sidecar:Resume:FollowPollInterval"] = "00:00:00.100",
        });
        using var producerClient = producer.CreateClient();
        using var survivorClient = survivor.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(producerClient, _emulator, session, "/scenario gate:4 deltas:20");
        for (var i = 0; i < 4; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        // The producer writes to Redis in the background: resume once the four events are there.
        await StoreProbe.WaitForEventsAsync(survivor.Services.GetRequiredService<IStreamStore>(), session, 4);
        using var resumed = await survivorClient.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var reader = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        for (var i = 0; i < 4; i++)
        {
            Assert.StartsWith($"id: {i}\n", await reader.NextAsync());
        }

        await producer.KillAsync();

        // Within the lease (1 s) and a poll: the terminal error part, then [DONE], then the end.
        var ending = await reader.NextAsync();
        Assert.Equal("data: [DONE]", await reader.NextAsync());
        Assert.Null(await reader.NextAsync());
        Assert.StartsWith("id: 4\ndata: {\"type\":\"error\",\"errorText\":", ending);
        using var part = System.Text.Json.JsonDocument.Parse(ending!["id: 4\ndata: ".Length..]);
        Assert.Equal(["type", "errorText"], part.RootElement.EnumerateObject().Select(p => p.Name));
        using var error = System.Text.Json.JsonDocument.Parse(part.RootElement.GetProperty("errorText").GetString()!);
        Assert.Equal("SERVER_ERROR", error.RootElement.GetProperty("type").GetString());
        Assert.Equal("stream", error.RootElement.GetProperty("category").GetString());
        Assert.Equal("producer_lost", error.RootElement.GetProperty("metadata").GetProperty("reason").GetString());
        Assert.Equal(call.Record.MessageId, error.RootElement.GetProperty("metadata").GetProperty("messageId").GetString());

        // A later resume gets the same ending, from the store.
        using var again = await survivorClient.SendAsync(Chat.Resume(session)).DefaultTimeout();
        var replayed = Chat.Text(await again.Content.ReadAsByteArrayAsync());
        Assert.EndsWith(ending + "\n\ndata: [DONE]\n\n", replayed, StringComparison.Ordinal);
    }
}
