using System.Net;
using System.Text;
using ChatUpstream;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>Resume from the store (the in-memory store here; the Redis suite runs the same flows across replicas).</summary>
public class ResumeTests(DefaultSidecarFixture fixture) : IClassFixture<DefaultSidecarFixture>
{
    private readonly EmulatorServer _emulator = fixture.Emulator;
    private readonly SidecarServer _sidecar = fixture.Sidecar;

    private Task StoredAsync(string session, long events, SidecarServer? sidecar = null) =>
        StoreProbe.WaitForEventsAsync((sidecar ?? _sidecar).Services.GetRequiredService<IStreamStore>(), session, events);

    [Fact]
    public async Task Resume_LiveStream_ReplaysFromTheStartThenFollowsToTheEnd()
    {
        var (resumed, messageId) = await ResumeLiveStreamAsync(_sidecar, "/scenario gate:5 deltas:20");
        using (resumed)
        {
            Assert.Equal("text/event-stream", resumed.Content.Headers.ContentType?.MediaType);
            Assert.Equal("no-cache", resumed.Headers.CacheControl?.ToString());
            Assert.Equal("none", Assert.Single(resumed.Content.Headers.ContentEncoding));
            Assert.Equal(messageId, resumed.Headers.GetValues("x-message-id").Single());
            Assert.False(resumed.Headers.Contains("x-vercel-ai-ui-message-stream"));
        }
    }

    [Fact]
    public async Task Resume_WithTheStoreWritesGathered_ReplaysAndFollowsEveryEventOnceToTheEnd()
    {
        // Sidecar:Store:WriteDelay on a real clock: the store lags the live answer by up to the
        // delay, and a resumer still gets every event once, in order, then the ending.
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?> { ["Sidecar:Store:WriteDelay"] = "00:00:00.020" });
        var (resumed, _) = await ResumeLiveStreamAsync(sidecar, "/scenario gate:5 deltas:40 pace:2");
        resumed.Dispose();
    }

    /// <summary>
    /// Starts an answer held after 5 events, resumes it once they are stored, then lets it go on:
    /// the live client and the resumer (its first 5 events read before the release) each get the
    /// whole answer, with ids. Returns the resume's response and the message id.
    /// </summary>
    private async Task<(HttpResponseMessage Resumed, string MessageId)> ResumeLiveStreamAsync(SidecarServer sidecar, string scenario)
    {
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, scenario);
        for (var i = 0; i < 5; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        await StoredAsync(session, 5, sidecar);
        var resumed = await client.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var resumeReader = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        for (var i = 0; i < 5; i++)
        {
            Assert.StartsWith($"id: {i}\n", await resumeReader.NextAsync());
        }

        call.Record.ReleaseGate();
        var live = await call.Reader.ReadToEndAsync();
        var replay = await resumeReader.ReadToEndAsync();

        var expected = Chat.WithIds(Chat.Events(call.Record.SentBytes()));
        Assert.Equal(expected, live);
        Assert.Equal(expected, replay);
        return (resumed, call.Record.MessageId);
    }

    [Fact]
    public async Task Resume_AtRandomDisconnectPoints_FullReplayAndLastEventIdBothRebuildTheAnswer()
    {
        var random = new Random(2026);
        using var client = _sidecar.CreateClient();
        for (var run = 0; run < 12; run++)
        {
            var session = Chat.NewSession();
            var seen = random.Next(1, 30);
            var gate = seen + random.Next(0, 4);
            var call = await Chat.StartAsync(client, _emulator, session, $"/scenario gate:{gate} deltas:40 reasoning");
            var prefix = new List<byte>();
            string? lastId = null;
            for (var i = 0; i < seen; i++)
            {
                var evt = await call.Reader.NextAsync();
                prefix.AddRange(Encoding.UTF8.GetBytes(evt + "\n\n"));
                lastId = evt!.Split('\n')[0]["id: ".Length..];
            }

            await call.Record.GateReached.DefaultTimeout();
            call.Dispose();
            await StoredAsync(session, seen);

            using var full = await client.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
            using var after = await client.SendAsync(Chat.Resume(session, lastEventId: lastId), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
            var fullReader = new TestEventReader(await full.Content.ReadAsStreamAsync());
            var afterReader = new TestEventReader(await after.Content.ReadAsStreamAsync());
            call.Record.ReleaseGate();

            var replayed = await fullReader.ReadToEndAsync();
            byte[] rebuilt = [.. prefix, .. await afterReader.ReadToEndAsync()];
            Assert.Equal(AnswerStatus.Completed, await call.Record.Ended.DefaultTimeout());
            var expected = Chat.WithIds(Chat.Events(call.Record.SentBytes()));
            Assert.Equal(expected, replayed);
            Assert.Equal(expected, rebuilt);
        }
    }

    [Fact]
    public async Task Resume_ManyConcurrentResumers_AllGetTheWholeAnswer()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3 deltas:100");
        await call.Record.GateReached.DefaultTimeout();
        await StoredAsync(session, 3);

        var resumers = await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            var response = await client.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
            return (response, reader: new TestEventReader(await response.Content.ReadAsStreamAsync()));
        }));
        call.Record.ReleaseGate();

        await call.Reader.ReadToEndAsync();
        var expected = Chat.WithIds(Chat.Events(call.Record.SentBytes()));
        foreach (var (response, reader) in resumers)
        {
            Assert.Equal(expected, await reader.ReadToEndAsync());
            response.Dispose();
        }
    }

    [Fact]
    public async Task Resume_AfterTheStreamCompleted_Is204()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using (var post = await client.SendAsync(Chat.Post(session, "hello")).DefaultTimeout())
        {
            await post.Content.ReadAsByteArrayAsync();
        }

        await ended.DefaultTimeout();
        await StoreProbe.WaitForEndAsync(_sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, resumed.StatusCode);
        Assert.Equal("no-cache", resumed.Headers.CacheControl?.ToString());
    }

    [Fact]
    public async Task Resume_OfAFailedStream_ReplaysWhatWasStoredAndEnds()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:5 drop:5");
        for (var i = 0; i < 5; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        call.Record.ReleaseGate();
        var live = await call.Reader.ReadToEndAsync();
        Assert.Equal(StreamOutcome.UpstreamFailed, (await ended.DefaultTimeout()).Outcome);
        await StoreProbe.WaitForEndAsync(_sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();

        // What was stored, then the ending the live client got (it is stored): a typed error, then [DONE].
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var prefix = Chat.WithIds(Chat.Events(call.Record.SentBytes()));
        var body = await resumed.Content.ReadAsByteArrayAsync();
        Assert.Equal(prefix, body[..prefix.Length]);
        Assert.Equal(Chat.Text(live), Chat.Text(body));
        var ending = Endings.Parts(Chat.Text(body[prefix.Length..]));
        Assert.Equal(2, ending.Count);
        Endings.AssertErrorEnding(ending, "SERVER_ERROR", "stream", "upstream_failed");
    }

    [Fact]
    public async Task Resume_ByAnotherPrincipal_LooksLikeNoStream()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        using var response = await StartAsAliceAsync(client, session);
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();

        using var mallory = await client.SendAsync(Chat.Resume(session, bearer: "token-of-mallory")).DefaultTimeout();
        using var anonymous = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        using var alice = await client.SendAsync(Chat.Resume(session, bearer: "token-of-alice"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, mallory.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.OK, alice.StatusCode);
        record.ReleaseGate();
    }

    [Fact]
    public async Task Resume_OfAnIncompleteEndedStream_PastWhatItStored_SaysResumeIsUnavailable()
    {
        // A stream that lost a write: its client was sent more than the store counts.
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var messageId = "m" + Guid.NewGuid().ToString("N")[..15];
        var owner = OwnerIdentity.Hash(new Microsoft.AspNetCore.Http.DefaultHttpContext().Request, session);
        var write = new StreamWrite(messageId)
        {
            Begin = new StreamRegistration(messageId, session, "c010", owner, "replica", DateTimeOffset.UtcNow.AddMinutes(1)),
            MarkIncomplete = true,
            End = StoredStreamState.Failed,
        };
        write.Events.Add(new StoredEvent(0, "data: {\"type\":\"start\"}\n\n"u8.ToArray()));
        Assert.All(await _sidecar.Services.GetRequiredService<IStreamStore>().WriteAsync([write], CancellationToken.None), Assert.True);

        using var resumed = await client.SendAsync(Chat.Resume(session, "5")).DefaultTimeout();

        // Not "nothing to resume" (204): the client would keep a cut answer with no error.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, resumed.StatusCode);
        Assert.Equal("resume", (await ErrorJson.ReadAsync(resumed)).GetProperty("category").GetString());
    }

    /// <summary>
    /// Replicas with in-memory stores (no Redis): a resume on a replica whose store lacks the
    /// session is the upstream's to answer, and its replay reaches the client as it sent it.
    /// </summary>
    [Fact]
    public async Task Resume_OnAReplicaWhoseStoreLacksTheSession_PassesTheUpstreamsReplayThrough()
    {
        await using var other = await SidecarServer.StartAsync(_emulator.Address);
        using var client = _sidecar.CreateClient();
        using var otherClient = other.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3 deltas:5");
        await call.Record.GateReached.DefaultTimeout();

        using var resumed = await otherClient.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var reader = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        for (var i = 0; i < 3; i++)
        {
            // The replay so far arrives before the answer goes on: nothing is buffered.
            Assert.NotNull(await reader.NextAsync());
        }

        call.Record.ReleaseGate();
        var body = await reader.ReadToEndAsync();

        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        Assert.Equal(call.Record.MessageId, resumed.Headers.GetValues("x-message-id").Single());
        Assert.Equal("none", Assert.Single(resumed.Content.Headers.ContentEncoding));
        Assert.False(resumed.Headers.Contains("x-vercel-ai-ui-message-stream"));
        Assert.Equal(Chat.Text(call.Record.SentBytes()), Chat.Text(body));
    }

    [Fact]
    public async Task Resume_TheFirstEventsComeWithTheLookup_ReadForTheOwnerOnly()
    {
        CountingReads? store = null;
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, services: services =>
        {
            var made = services.Last(d => d.ServiceType == typeof(IStreamStore));
            services.AddSingleton<IStreamStore>(sp => store = new CountingReads((IStreamStore)made.ImplementationFactory!(sp)));
        });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var post = Chat.Post(session, "/scenario end:7");
        post.Headers.Authorization = new("Bearer", "token-of-alice");
        using (var answer = await client.SendAsync(post).DefaultTimeout())
        {
            await answer.Content.ReadAsStringAsync();
        }

        await StoreProbe.WaitForEndAsync(sidecar.Services.GetRequiredService<IStreamStore>(), session);
        var stored = (await store!.FindActiveAsync(session, CancellationToken.None))!.EventCount;

        using var mallory = await client.SendAsync(Chat.Resume(session, bearer: "token-of-mallory")).DefaultTimeout();
        var (strangerReads, strangerEvents) = store.Take();
        using var alice = await client.SendAsync(Chat.Resume(session, bearer: "token-of-alice")).DefaultTimeout();
        await alice.Content.ReadAsStringAsync();
        var (ownerReads, ownerEvents) = store.Take();

        // The stranger's request made the store read no event.
        Assert.Equal(HttpStatusCode.NoContent, mallory.StatusCode);
        Assert.Equal((0, 0L), (strangerReads, strangerEvents));
        // The owner's whole (short) answer came with the lookup: no read after it.
        Assert.Equal(HttpStatusCode.OK, alice.StatusCode);
        Assert.Equal((0, stored), (ownerReads, ownerEvents));
    }

    [Fact]
    public async Task Stop_ByTheOwner_EndsLiveAndResumingClientsWithAbort_AndCancelsTheUpstream()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3 deltas:20");
        for (var i = 0; i < 3; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        await StoredAsync(session, 3);
        using var follower = await client.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var followed = new TestEventReader(await follower.Content.ReadAsStreamAsync());
        using var stop = await client.SendAsync(Chat.Stop(session)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        Assert.Equal(StreamOutcome.Stopped, (await ended.DefaultTimeout()).Outcome);
        Assert.Equal(AnswerStatus.ReaderGone, await call.Record.Ended.DefaultTimeout());
        var ending = "id: 3\ndata: {\"type\":\"abort\"}\n\nid: 4\ndata: [DONE]\n\n";
        Assert.Equal(ending, Chat.Text(await call.Reader.ReadToEndAsync())[^ending.Length..]);
        var upstream = Chat.WithIds(Chat.Events(call.Record.SentBytes()));
        Assert.Equal(Chat.Text(upstream) + ending, Chat.Text(await followed.ReadToEndAsync()));

        // Stopped is a normal ending: nothing left to resume.
        await StoreProbe.WaitForEndAsync(_sidecar.Services.GetRequiredService<IStreamStore>(), session);
        using var later = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        Assert.Equal(HttpStatusCode.NoContent, later.StatusCode);
    }

    [Fact]
    public async Task Stop_WhileAnArtifactStreams_ClosesItBeforeTheAbort()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        // start, start-step, 3 tool-input parts, kind, id, title, clear, a code delta: the artifact is open.
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario artifact gate:10");
        for (var i = 0; i < 10; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        using var stop = await client.SendAsync(Chat.Stop(session)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        Assert.Equal(StreamOutcome.Stopped, (await ended.DefaultTimeout()).Outcome);
        var parts = Endings.Parts(Chat.Text(await call.Reader.ReadToEndAsync()));
        // The client's artifact leaves "streaming" only on data-finish.
        Assert.Equal(["{\"type\":\"data-finish\",\"data\":null,\"transient\":true}", "{\"type\":\"abort\"}", "[DONE]"], parts[^3..]);
    }

    [Fact]
    public async Task Stop_ByAnotherPrincipal_StopsNothingAndSaysNothing()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var post = Chat.Post(session, "/scenario gate:2");
        post.Headers.Authorization = new("Bearer", "token-of-alice");
        using var response = await client.SendAsync(post, HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var reader = new TestEventReader(await response.Content.ReadAsStreamAsync());
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();
        await record.GateReached.DefaultTimeout();

        using var stop = await client.SendAsync(Chat.Stop(session, bearer: "token-of-mallory")).DefaultTimeout();
        record.ReleaseGate();

        Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        Assert.EndsWith("data: [DONE]\n\n", Chat.Text(await reader.ReadToEndAsync()), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("403", HttpStatusCode.Forbidden, "RESUME_FORBIDDEN")]
    [InlineData("404", HttpStatusCode.NotFound, "RESUME_NOT_FOUND")]
    public async Task Resume_ByAnotherPrincipal_WhenConfigured_GetsATypedRefusal(string status, HttpStatusCode expected, string code)
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?> { ["Sidecar:Resume:DeniedStatus"] = status });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        using var response = await StartAsAliceAsync(client, session, sidecar);
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();

        using var resume = await client.SendAsync(Chat.Resume(session, bearer: "token-of-mallory")).DefaultTimeout();
        using var stop = await client.SendAsync(Chat.Stop(session, bearer: "token-of-mallory")).DefaultTimeout();
        record.ReleaseGate();

        Assert.Equal(expected, resume.StatusCode);
        Assert.Equal(code, (await ErrorJson.ReadAsync(resume)).GetProperty("errorCode").GetString());
        Assert.Equal(expected, stop.StatusCode);
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
    }

    [Theory]
    [InlineData("/api/v/c010/a%7Bb")]
    [InlineData("/api/v/c010/a%20b")]
    [InlineData("/api/v/c%24%24/session")]
    [InlineData("/api/v/c010/a%5Cb")]
    [InlineData("/api/v/c010/%E2%80%AE")]
    public async Task Resume_InvalidIds_AreRefusedWithATypedError(string path)
    {
        using var client = _sidecar.CreateClient();

        using var response = await client.GetAsync(path).DefaultTimeout();
        var error = await ErrorJson.ReadAsync(response);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        ErrorJson.AssertContractShape(error, "INVALID_REQUEST", 400);
    }

    [Theory]
    // Dot segments are removed by Kestrel (the path becomes /api/v: the upstream's invalid path);
    // a NUL is refused by Kestrel itself. Neither reaches the store.
    [InlineData("/api/v/c010/%2E%2E")]
    [InlineData("/api/v/c010/a%00b")]
    [InlineData("/api/v/c010/..%2F..%2Fetc")]
    public async Task Resume_PathLikeIds_AreRefusedBeforeTheStore(string path)
    {
        using var client = _sidecar.CreateClient();

        using var response = await client.GetAsync(path).DefaultTimeout();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Resume_OverLongSessionId_IsRefusedWithATypedError()
    {
        using var client = _sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Resume(new string('s', 129))).DefaultTimeout();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        ErrorJson.AssertContractShape(await ErrorJson.ReadAsync(response), "INVALID_REQUEST", 400);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("99999999999999999999")]
    // Parses, but no event can follow it.
    [InlineData("9223372036854775807")]
    public async Task Resume_InvalidLastEventId_IsRefusedWithATypedError(string lastEventId)
    {
        using var client = _sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Resume(Chat.NewSession(), lastEventId)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("INVALID_LAST_EVENT_ID", (await ErrorJson.ReadAsync(response)).GetProperty("errorCode").GetString());
    }

    [Fact]
    public async Task Resume_OfAFailedStream_FromItsLastEvent_HasNothingToSend()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        // Ends without finish: stored Failed with the sidecar's ending.
        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario end:7");
        await StoreProbe.WaitForEndAsync(_sidecar.Services.GetRequiredService<IStreamStore>(), session);
        var stream = await _sidecar.Services.GetRequiredService<IStreamStore>().FindActiveAsync(session, CancellationToken.None);
        Assert.Equal(StoredStreamState.Failed, stream!.State);
        var last = (stream.EventCount - 1).ToString(System.Globalization.CultureInfo.InvariantCulture);

        using var fromLast = await client.SendAsync(Chat.Resume(session, last)).DefaultTimeout();
        using var fromBefore = await client.SendAsync(Chat.Resume(session, (stream.EventCount - 2).ToString(System.Globalization.CultureInfo.InvariantCulture))).DefaultTimeout();

        // A client that has the ending gets no second, invented one (an EventSource would reconnect on a 200).
        Assert.Equal(HttpStatusCode.NoContent, fromLast.StatusCode);
        // One that lacks the ending gets it, the stored one.
        Assert.Equal(HttpStatusCode.OK, fromBefore.StatusCode);
        Assert.Equal(["[DONE]"], Endings.Parts(await fromBefore.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task Resume_UnderAnotherAgentsPath_IsTheUpstreamsToAnswer()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:2");
        await call.Record.GateReached.DefaultTimeout();
        await StoredAsync(session, 2);

        using var otherAgent = await client.SendAsync(Chat.Resume(session, agentId: "c011")).DefaultTimeout();
        call.Record.ReleaseGate();

        Assert.Equal(HttpStatusCode.BadRequest, otherAgent.StatusCode);
        Assert.Contains("INVALID_AGENT", await otherAgent.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resume_OfASessionTheStoreDoesNotKnow_IsTheUpstreamsToAnswer()
    {
        using var client = _sidecar.CreateClient();

        using var unknownAgent = await client.SendAsync(Chat.Resume(Chat.NewSession(), agentId: "c011")).DefaultTimeout();
        using var unknownSession = await client.SendAsync(Chat.Resume(Chat.NewSession())).DefaultTimeout();

        Assert.Equal(HttpStatusCode.BadRequest, unknownAgent.StatusCode);
        Assert.Contains("INVALID_AGENT", await unknownAgent.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NoContent, unknownSession.StatusCode);
    }

    /// <summary>Alice starts a chat (bearer token) that waits at its second event.</summary>
    private async Task<HttpResponseMessage> StartAsAliceAsync(HttpClient client, string session, SidecarServer? sidecar = null)
    {
        var post = Chat.Post(session, "/scenario gate:2");
        post.Headers.Authorization = new("Bearer", "token-of-alice");
        var response = await client.SendAsync(post, HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        await (await _emulator.Journal.ForSession(session).DefaultTimeout()).GateReached.DefaultTimeout();
        await StoredAsync(session, 2, sidecar);
        return response;
    }

    /// <summary>Counts the store's plain reads, and the events its owner-only reads returned.</summary>
    private sealed class CountingReads(IStreamStore inner) : DelegatingStreamStore(inner)
    {
        private int _reads;
        private long _ownedEvents;

        /// <summary>The counts since the last call, reset.</summary>
        public (int Reads, long OwnedEvents) Take() => (Interlocked.Exchange(ref _reads, 0), Interlocked.Exchange(ref _ownedEvents, 0));

        public override Task<IReadOnlyList<StoredEvent>> ReadAsync(string messageId, long fromSequence, int maxCount, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            return base.ReadAsync(messageId, fromSequence, maxCount, cancellationToken);
        }

        public override async Task<IReadOnlyList<StoredEvent>> ReadIfOwnedAsync(string messageId, string ownerHash, long fromSequence, int maxCount, CancellationToken cancellationToken)
        {
            var events = await base.ReadIfOwnedAsync(messageId, ownerHash, fromSequence, maxCount, cancellationToken);
            Interlocked.Add(ref _ownedEvents, events.Count);
            return events;
        }
    }
}
