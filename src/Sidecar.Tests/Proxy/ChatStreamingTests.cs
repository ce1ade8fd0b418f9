using System.Net;
using System.Text;
using ChatUpstream;
using Sidecar.Streams;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Proxy;

public class ChatStreamingTests(ProxyFixture fixture) : IClassFixture<ProxyFixture>
{
    private readonly EmulatorServer _emulator = fixture.Emulator;
    private readonly SidecarServer _sidecar = fixture.Sidecar;

    [Fact]
    public async Task Post_FirstEvents_ReachTheClientWhileTheUpstreamIsStillSending()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3");
        var (reader, record) = (call.Reader, call.Record);

        Assert.StartsWith("data: {\"type\":\"start\"", await reader.NextAsync());
        Assert.Equal("data: {\"type\":\"start-step\"}", await reader.NextAsync());
        Assert.StartsWith("data: {\"type\":\"text-start\"", await reader.NextAsync());
        // The client holds three events while the emulator is still waiting to send the fourth.
        await record.GateReached.DefaultTimeout();
        Assert.Equal(AnswerStatus.Running, record.Status);
        Assert.Equal(3, record.FramesSent);

        record.ReleaseGate();
        var body = await reader.ReadToEndAsync();
        Assert.Equal(record.SentBytes(), body);
    }

    [Fact]
    public async Task Post_Headers_ReachTheClientBeforeTheFirstEvent()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        // The emulator sends its headers, then waits before the first part.
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:0");

        Assert.Equal(HttpStatusCode.OK, call.Response.StatusCode);
        Assert.Equal(0, call.Record.FramesSent);
        call.Record.ReleaseGate();
        Assert.Equal(call.Record.TotalFrames, Chat.Events(await call.Reader.ReadToEndAsync()).Count);
    }

    [Theory]
    [InlineData("")]
    [InlineData("reasoning search artifact")]
    [InlineData("artifact:diagram deltas:40")]
    [InlineData("deltas:500")]
    [InlineData("deltas:3 delta-bytes:40000")]
    [InlineData("persist-error")]
    [InlineData("resume-error")]
    [InlineData("stream-error:6")]
    [InlineData("crlf artifact")]
    [InlineData("chunk:7 reasoning")]
    [InlineData("chunk:1 deltas:3")]
    [InlineData("pace:2 deltas:10")]
    [InlineData("malformed:bad-json")]
    [InlineData("malformed:binary:5000")]
    [InlineData("malformed:long-line:1000000")]
    public async Task Post_Scenario_BodyIsByteIdenticalToWhatTheUpstreamSent(string scenario)
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario " + scenario);
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotEqual(AnswerStatus.ReaderGone, await record.Ended.DefaultTimeout());
        Assert.Equal(record.SentBytes(), body);
        var (pump, outcome) = await ended.DefaultTimeout();
        Assert.Equal(record.SentBytes().Length, pump.State.Bytes);
        Assert.True(outcome.UpstreamEndedCleanly(), outcome.ToString());
    }

    [Fact]
    public async Task Post_LastEventWithoutItsBlankLine_IsTerminated()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario malformed:no-final-blank");
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        // "data: [DONE]" and the end of body: the event is closed, so nothing can run into it.
        Assert.EndsWith("data: [DONE]", Chat.Text(record.SentBytes()), StringComparison.Ordinal);
        Assert.Equal(Chat.Text(record.SentBytes()) + "\n\n", Chat.Text(body));
    }

    [Theory]
    [InlineData("", "Completed", true, true, 0)]
    [InlineData("persist-error", "UpstreamErrorPart", true, true, 0)]
    // The service's resume error after finish leaves the answer whole (its quota is confirmed).
    [InlineData("resume-error", "Completed", true, true, 0)]
    [InlineData("stream-error:6", "UpstreamErrorPart", false, true, 0)]
    [InlineData("end:7", "EndedWithoutFinish", false, true, 0)]
    [InlineData("malformed:no-final-blank", "Completed", true, true, 0)]
    [InlineData("malformed:bad-json", "Completed", true, true, 1)]
    [InlineData("malformed:long-line:1000000", "Completed", true, true, 0)]
    public async Task Post_Scenario_StreamStateIsTracked(string scenario, string expected, bool finish, bool done, int invalidParts)
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);

        using var response = await client.SendAsync(Chat.Post(session, "/scenario " + scenario), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();
        var (pump, outcome) = await ended.DefaultTimeout();

        Assert.Equal(expected, outcome.ToString());
        Assert.Equal(response.Headers.GetValues("x-message-id").Single(), pump.State.MessageId);
        Assert.Null(pump.State.ConflictingStartMessageId);
        Assert.True(pump.State.StartSeen);
        Assert.Equal(finish, pump.State.FinishSeen);
        Assert.Equal(done, pump.State.DoneSeen);
        Assert.Equal(invalidParts, pump.State.InvalidParts);
    }

    [Theory]
    [InlineData("end:7", false)]
    [InlineData("crlf end:7", false)]
    // start, start-step, 3 tool-input parts, kind, id, title, clear, 2 code deltas: then the body ends.
    [InlineData("artifact end:11", true)]
    // The same with the upstream's [DONE] before its end (an AI SDK stream closed early): not sent.
    [InlineData("done-early:7", false, true)]
    [InlineData("artifact done-early:11", true, true)]
    public async Task Post_UpstreamEndsCleanlyBeforeFinish_ClientGetsThePrefixThenATypedEnding(string scenario, bool artifactOpen, bool upstreamDone = false)
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);

        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario " + scenario);
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);
        var (pump, outcome) = await ended.DefaultTimeout();

        // Without the sidecar the client would end "ready" (it skips [DONE]): a silent truncation.
        var sent = record.SentBytes();
        if (upstreamDone)
        {
            Assert.EndsWith("data: [DONE]\n\n", Chat.Text(sent), StringComparison.Ordinal);
            sent = sent[..^"data: [DONE]\n\n".Length];
        }

        Assert.Equal(sent, body[..sent.Length]);
        var ending = Endings.Parts(Chat.Text(body[sent.Length..]));
        Assert.Equal(artifactOpen ? 3 : 2, ending.Count);
        Endings.AssertErrorEnding(ending, "SERVER_ERROR", "stream", "ended_without_finish", artifactOpen, response.Headers.GetValues("x-message-id").Single());
        Assert.Equal(StreamOutcome.EndedWithoutFinish, outcome);
        Assert.False(pump.State.ArtifactOpen);
    }

    [Fact]
    public async Task Post_UpstreamDropsMidStream_ClientGetsThePrefixThenATypedErrorAndDone()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);

        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:5 drop:5");
        var (reader, record) = (call.Reader, call.Record);
        for (var i = 0; i < 5; i++)
        {
            Assert.NotNull(await reader.NextAsync());
        }

        // The five events are through; now the upstream's connection drops.
        record.ReleaseGate();
        var body = await reader.ReadToEndAsync();

        // Without the sidecar the client would get a bare "TypeError: terminated".
        Assert.Equal(StreamOutcome.UpstreamFailed, (await ended.DefaultTimeout()).Outcome);
        var sent = record.SentBytes();
        Assert.Equal(sent, body[..sent.Length]);
        var ending = Endings.Parts(Chat.Text(body[sent.Length..]));
        Assert.Equal(2, ending.Count);
        Endings.AssertErrorEnding(ending, "SERVER_ERROR", "stream", "upstream_failed", messageId: call.Response.Headers.GetValues("x-message-id").Single());
    }

    [Fact]
    public async Task Post_UpstreamEndsInsideAnEvent_TheHalfEventIsDroppedAndTheEndingStandsAlone()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        // Five frames, then half of the sixth (a text-delta cut inside its JSON), then a clean end of body.
        using var answer = await Chat.PostToEndAsync(client, _emulator, session, "/scenario half:5");
        var (response, body, record) = (answer.Response, answer.Body, answer.Record);

        var whole = Chat.Events(record.SentBytes())[..5].SelectMany(e => e).ToArray();
        Assert.Equal(whole, body[..whole.Length]);
        var ending = Endings.Parts(Chat.Text(body[whole.Length..]));
        Assert.Equal(2, ending.Count);
        Endings.AssertErrorEnding(ending, "SERVER_ERROR", "stream", "ended_without_finish");
    }

    [Fact]
    public async Task Post_ClientDisconnectsMidStream_UpstreamIsStillReadToItsEnd()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);

        var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:2 deltas:300");
        var (reader, record) = (call.Reader, call.Record);
        await reader.NextAsync();
        await reader.NextAsync();
        await record.GateReached.DefaultTimeout();
        var pump = _sidecar.Pumps.Active.Single(p => p.Exchange.SessionId == session);

        // The client goes away; the sidecar notices (the live feed closes) while the upstream waits.
        call.Dispose();
        await pump.Live.Completion.DefaultTimeout();
        Assert.Equal(AnswerStatus.Running, record.Status);

        record.ReleaseGate();
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        var (_, outcome) = await ended.DefaultTimeout();
        Assert.Equal(StreamOutcome.Completed, outcome);
        Assert.Equal(record.TotalFrames, pump.State.Events);
        Assert.Equal(record.SentBytes().Length, pump.State.Bytes);
    }

    [Fact]
    public async Task Post_ClientLeavesBeforeTheUpstreamAnswers_TheAnswerStillRunsToItsEnd()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = _sidecar.PumpEnded(session);
        using var left = new InstrumentCounter(_sidecar, "sidecar.client.disconnected");
        using var cancel = new CancellationTokenSource();

        // The upstream holds its headers (guards, quota); the client gives up meanwhile.
        var sending = client.SendAsync(Chat.Post(session, "/scenario gate:headers deltas:50"), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();
        await record.GateReached.DefaultTimeout();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
        await left.WaitForTotalAsync(1).DefaultTimeout();

        record.ReleaseGate();
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        var (pump, outcome) = await ended.DefaultTimeout();
        Assert.Equal(StreamOutcome.Completed, outcome);
        Assert.Equal(record.TotalFrames, pump.State.Events);
    }

    [Fact]
    public async Task Post_ContractHeaders_ArePreserved()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        using var response = await client.SendAsync(Chat.Post(session, "hello"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        await response.Content.ReadAsByteArrayAsync().DefaultTimeout();
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("none", Assert.Single(response.Content.Headers.ContentEncoding));
        Assert.True(response.Headers.TransferEncodingChunked);
        Assert.Equal("no-cache", response.Headers.CacheControl?.ToString());
        Assert.Equal("v1", response.Headers.GetValues("x-vercel-ai-ui-message-stream").Single());
        Assert.Equal("no", response.Headers.GetValues("x-accel-buffering").Single());
        Assert.Equal(record.MessageId, response.Headers.GetValues("x-message-id").Single());
        Assert.Equal(session, response.Headers.GetValues("x-session-id").Single());
        Assert.Equal("c010", response.Headers.GetValues("x-agent-id").Single());
        Assert.NotEmpty(response.Headers.GetValues("x-request-id").Single());
        Assert.Equal($"c010_last_session={session}; Path=/; HttpOnly; SameSite=Lax", response.Headers.GetValues("set-cookie").Single());
    }

    [Fact]
    public async Task Post_CredentialsAndForwardingHeaders_ReachTheUpstream()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var request = Chat.Post(session, "hi");
        request.Headers.Authorization = new("Bearer", "token-123");
        request.Headers.Add("Cookie", "__session=clerk-abc; theme=dark");
        request.Headers.Add("X-Forwarded-For", "203.0.113.7");
        request.Headers.Add("X-Forwarded-Proto", "https");
        request.Headers.Add("X-Forwarded-Host", "chat.example.com");

        using var response = await client.SendAsync(request).DefaultTimeout();
        var headers = (await _emulator.Journal.ForSession(session).DefaultTimeout()).RequestHeaders;

        Assert.Equal("Bearer token-123", headers["authorization"]);
        Assert.Equal("__session=clerk-abc; theme=dark", headers["cookie"]);
        // Appended to the chain of the load balancer in front: the original client stays first.
        Assert.Equal("203.0.113.7,127.0.0.1", headers["x-forwarded-for"].Replace(" ", "", StringComparison.Ordinal));
        Assert.Equal("https,http", headers["x-forwarded-proto"].Replace(" ", "", StringComparison.Ordinal));
        Assert.Equal($"chat.example.com,{_sidecar.PublicAddress.Authority}", headers["x-forwarded-host"].Replace(" ", "", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Post_NoForwardingHeaders_SidecarSetsThem()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        using var response = await client.SendAsync(Chat.Post(session, "hi")).DefaultTimeout();
        var headers = (await _emulator.Journal.ForSession(session).DefaultTimeout()).RequestHeaders;

        Assert.Equal("127.0.0.1", headers["x-forwarded-for"]);
        Assert.Equal("http", headers["x-forwarded-proto"]);
        Assert.Equal(_sidecar.PublicAddress.Authority, headers["x-forwarded-host"]);
    }

    [Fact]
    public async Task Get_ChatRouteWithNothingToResume_PassesTheUpstreams204()
    {
        using var client = _sidecar.CreateClient();

        using var response = await client.GetAsync($"/api/v/c010/{Chat.NewSession()}").DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("no-cache", response.Headers.CacheControl?.ToString());
    }

    [Theory]
    [InlineData("/api/v/c011/abc", "INVALID_REQUEST")]
    [InlineData("/api/v/c010", "INVALID_REQUEST")]
    public async Task Post_InvalidChatPaths_GetTheUpstreamsAnswer(string path, string type)
    {
        using var client = _sidecar.CreateClient();
        var request = Chat.Post("x", "hi");
        request.RequestUri = new Uri(path, UriKind.Relative);

        using var response = await client.SendAsync(request).DefaultTimeout();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains($"\"type\":\"{type}\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_OutsideTheChatRoute_AreProxied()
    {
        using var client = _sidecar.CreateClient();

        using var page = await client.GetAsync("/").DefaultTimeout();
        using var trpc = await client.PostAsync("/api/trpc/session.list?batch=1", new StringContent("{}")).DefaultTimeout();

        Assert.Contains("c010 chat", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var echo = await trpc.Content.ReadAsStringAsync();
        Assert.Contains("\"path\":\"/api/trpc/session.list\"", echo, StringComparison.Ordinal);
        Assert.Contains("\"query\":\"?batch=1\"", echo, StringComparison.Ordinal);
        Assert.Contains("\"method\":\"POST\"", echo, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("error:rate-limit", 429, "\"type\":\"RATE_LIMIT\"")]
    [InlineData("error:session", 400, "\"errorCode\":\"SESSION_CREATION_FAILED\"")]
    [InlineData("error:quota", 402, "\"code\":\"QUOTA_RESERVATION_ERROR\"")]
    public async Task Post_UpstreamErrorBodies_PassThrough(string scenario, int status, string fragment)
    {
        using var client = _sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario " + scenario)).DefaultTimeout();

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(fragment, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_BodyOfExactlyTheLimit_PassesThrough()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var request = SizedPost(session, 1_000_000, chunked: false);

        using var response = await client.SendAsync(request).DefaultTimeout();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.EndsWith("data: [DONE]\n\n", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Post_BodyOverTheLimit_GetsTypedPayloadTooLarge(bool chunked)
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();

        using var response = await client.SendAsync(SizedPost(session, 1_000_001, chunked)).DefaultTimeout();
        var error = await ErrorJson.ReadAsync(response);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        ErrorJson.AssertContractShape(error, "PAYLOAD_TOO_LARGE", 413);
        Assert.Equal(session, error.GetProperty("metadata").GetProperty("sessionId").GetString());
        Assert.Equal(session, response.Headers.GetValues("x-session-id").Single());
    }

    private static HttpRequestMessage SizedPost(string session, int size, bool chunked)
    {
        var request = Chat.Post(session, "x");
        var json = request.Content!.ReadAsStringAsync().Result;
        // Pad the text so that the whole JSON body is exactly `size` bytes.
        var padded = json.Replace("\"text\":\"x\"", "\"text\":\"x" + new string(' ', size - Encoding.UTF8.GetByteCount(json)) + "\"", StringComparison.Ordinal);
        var bytes = Encoding.UTF8.GetBytes(padded);
        Assert.Equal(size, bytes.Length);
        request.Content = chunked ? new StreamContent(new NonSeekableStream(bytes)) : new ByteArrayContent(bytes);
        request.Content.Headers.ContentType = new("application/json");
        return request;
    }

    /// <summary>A body whose length HttpClient cannot know, so it is sent chunked.</summary>
    private sealed class NonSeekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
