using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Sidecar.Streams;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Telemetry;

/// <summary>What operators see: the Prometheus endpoint, the stream and resume spans, readiness and the drain.</summary>
public sealed class OperationsTests : IAsyncLifetime
{
    private EmulatorServer _emulator = null!;

    public async Task InitializeAsync() => _emulator = await EmulatorServer.StartAsync();

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    [Fact]
    public async Task Metrics_AreScrapedOnTheManagementPortOnly_WithTheSidecarsAndThePlatformsInstruments()
    {
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address);
        using var client = sidecar.CreateClient();
        using var answer = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario end:5")).DefaultTimeout();
        await answer.Content.ReadAsStringAsync();
        using var management = new HttpClient { BaseAddress = sidecar.ManagementAddress };

        // The exporter caches a scrape briefly; the stream's end is recorded when its pump is done.
        string scrape;
        do
        {
            scrape = await management.GetStringAsync("/metrics").DefaultTimeout();
        }
        while (!scrape.Contains("sidecar_stream_ended_total{", StringComparison.Ordinal) && await Yield());

        Assert.Contains("sidecar_stream_started_total", scrape, StringComparison.Ordinal);
        Assert.Matches("sidecar_stream_ended_total\\{[^}]*outcome=\"ended_without_finish\"", scrape);
        Assert.Matches("sidecar_stream_injected_total\\{[^}]*part=\"error\"[^}]*reason=\"ended_without_finish\"", scrape);
        Assert.Contains("sidecar_stream_duration_seconds_bucket", scrape, StringComparison.Ordinal);
        Assert.Contains("http_server_request_duration_seconds", scrape, StringComparison.Ordinal);
        Assert.Contains("kestrel_", scrape, StringComparison.Ordinal);
        Assert.Contains("http_client_request_duration_seconds", scrape, StringComparison.Ordinal);
        Assert.Contains("dotnet_", scrape, StringComparison.Ordinal);
        // Never a session or message id as a label.
        Assert.DoesNotContain("session", scrape.Split('\n').Where(l => l.StartsWith("sidecar_", StringComparison.Ordinal)).SelectMany(l => l.Split('{').Skip(1)), StringComparer.Ordinal);

        using var onPublicPort = await client.GetAsync("/metrics").DefaultTimeout();
        Assert.DoesNotContain("sidecar_stream_started_total", await onPublicPort.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamSpan_CarriesWhatTheSidecarDecided_AndAResumeLinksToIt()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Sidecar",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var answer = await client.SendAsync(Chat.Post(session, "/scenario artifact end:11")).DefaultTimeout();
        await answer.Content.ReadAsStringAsync();
        await ended.DefaultTimeout();
        using var resumed = await client.SendAsync(Chat.Resume(session)).DefaultTimeout();
        await resumed.Content.ReadAsStringAsync();

        var stream = stopped.Single(a => a.OperationName == "chat.stream" && (string?)a.GetTagItem("chat.session_id") == session);
        Assert.Equal("ended_without_finish", stream.GetTagItem("chat.outcome"));
        Assert.Equal(ActivityStatusCode.Error, stream.Status);
        Assert.Equal(["sidecar.injected", "sidecar.injected", "sidecar.injected", "sidecar.outcome"], stream.Events.Select(e => e.Name));
        Assert.Equal(["data_finish", "error", "done"], stream.Events.Take(3).Select(e => (string?)e.Tags.Single(t => t.Key == "part").Value));
        var resume = stopped.Single(a => a.OperationName == "chat.resume" && (string?)a.GetTagItem("chat.session_id") == session);
        Assert.Equal(stream.Context.TraceId, resume.Links.Single().Context.TraceId);
        Assert.Equal(stream.Context.SpanId, resume.Links.Single().Context.SpanId);
    }

    [Fact]
    public async Task Readiness_FollowsRedisAndTheUpstream()
    {
        using var redis = new OwnedRedis();
        redis.Start();
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = redis.Configuration,
            ["Sidecar:Store:KeyPrefix"] = RedisServer.NewPrefix(),
            ["Sidecar:Health:RedisRequiredForReady"] = "true",
        });
        await using var lenient = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = redis.Configuration,
            ["Sidecar:Store:KeyPrefix"] = RedisServer.NewPrefix(),
        });
        using var management = new HttpClient { BaseAddress = sidecar.ManagementAddress };
        using var lenientManagement = new HttpClient { BaseAddress = lenient.ManagementAddress };
        Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/readyz").DefaultTimeout()).StatusCode);

        redis.Kill();
        Assert.True(await EventuallyAsync(async () => (await management.GetAsync("/readyz")).StatusCode == HttpStatusCode.ServiceUnavailable));
        // By default a Redis outage is "degraded": still ready, answers stream without resume.
        Assert.True(await EventuallyAsync(async () => (await (await lenientManagement.GetAsync("/readyz")).Content.ReadAsStringAsync()) == "Degraded"));
        Assert.Equal(HttpStatusCode.OK, (await lenientManagement.GetAsync("/readyz").DefaultTimeout()).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/healthz").DefaultTimeout()).StatusCode);

        redis.Start();
        Assert.True(await EventuallyAsync(async () => (await management.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK));

        using var refusing = Loopback.RefusingPort(out var port);
        await using var orphan = await SidecarServer.StartAsync(new Uri($"http://127.0.0.1:{port}"));
        using var orphanManagement = new HttpClient { BaseAddress = orphan.ManagementAddress };
        using var notReady = await orphanManagement.GetAsync("/readyz").DefaultTimeout();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.Contains("Unhealthy", await notReady.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Draining_ANewChatPostGetsATyped503_WhileALiveStreamFinishes()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:ShutdownDelay"] = "00:00:10",
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        }, time);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, _emulator, session, "/scenario gate:3");
        await call.Record.GateReached.DefaultTimeout();

        // SIGTERM: not ready at once, the listeners stay open for the shutdown delay.
        var stopping = sidecar.StopAsync();
        using var management = new HttpClient { BaseAddress = sidecar.ManagementAddress };
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await management.GetAsync("/readyz").DefaultTimeout()).StatusCode);
        using var refused = await client.SendAsync(Chat.Post(Chat.NewSession(), "hello")).DefaultTimeout();
        call.Record.ReleaseGate();
        var body = await call.Reader.ReadToEndAsync();
        time.Advance(TimeSpan.FromSeconds(10));
        await stopping.DefaultTimeout();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        var error = await ErrorJson.ReadAsync(refused);
        ErrorJson.AssertContractShape(error, "SERVICE_UNAVAILABLE", 503);
        Assert.Equal("SIDECAR_DRAINING", error.GetProperty("errorCode").GetString());
        Assert.Equal(Chat.Text(Chat.WithIds(Chat.Events(call.Record.SentBytes()))), Chat.Text(body));
    }

    /// <summary>Lets the exporter's cache or a background check catch up; bounded by the default timeout.</summary>
    private static async Task<bool> Yield()
    {
        await Task.Yield();
        return true;
    }

    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        using var timeout = new CancellationTokenSource(TaskTimeoutExtensions.DefaultTimeoutSpan);
        while (!timeout.IsCancellationRequested)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Yield();
        }

        return false;
    }
}

/// <summary>Logs at every level, through streams, resumes, stops, acks and errors: no credential and no message content.</summary>
public sealed class LogRedactionTests
{
    [Fact]
    public async Task NoLogLine_CarriesACredentialACookieOrMessageContent()
    {
        const string token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyX3NlY3JldCJ9.c2lnbmF0dXJlLXNlY3JldA";
        const string cookie = "session-cookie-secret-value";
        const string ackToken = "ack-callback-token-secret-0123";
        const string userText = "my private question about zebras";
        await using var emulator = await EmulatorServer.StartAsync();
        var logs = new CapturedLogs(Microsoft.Extensions.Logging.LogLevel.Trace);
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Persistence:Mode"] = "Callback",
            ["Sidecar:Persistence:AckTimeout"] = "00:00:00.200",
            ["Sidecar:Persistence:CallbackToken"] = ackToken,
        }, logs: logs);
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        var post = Chat.Post(session, userText + " /scenario end:5");
        post.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        post.Headers.Add("Cookie", "__session=" + cookie);
        using (var answer = await client.SendAsync(post).DefaultTimeout())
        {
            await answer.Content.ReadAsStringAsync();
        }

        var second = Chat.Post(Chat.NewSession(), userText + " /scenario deltas:2");
        second.Headers.Add("Cookie", "__session=" + cookie);
        using (var answer = await client.SendAsync(second).DefaultTimeout())
        {
            await answer.Content.ReadAsStringAsync();
        }

        using (var resume = await client.SendAsync(Chat.Resume(session, bearer: token)).DefaultTimeout())
        {
            await resume.Content.ReadAsStringAsync();
        }

        using var management = new HttpClient { BaseAddress = sidecar.ManagementAddress };
        using var badAck = new HttpRequestMessage(HttpMethod.Post, "/sidecar/v1/acks/unknown1") { Content = new StringContent("{\"status\":\"saved\"}") };
        badAck.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ackToken + "x");
        using (await management.SendAsync(badAck).DefaultTimeout())
        {
        }

        var text = logs.Text;
        Assert.NotEmpty(text);
        foreach (var secret in new[] { token, "user_secret", cookie, ackToken, userText, "zebras" })
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
        }
    }
}

/// <summary>SIGTERM to the real process: not ready, typed 503s for new chats, the live stream finishes, a clean exit.</summary>
public sealed class GracefulShutdownTests
{
    [Fact]
    public async Task Sigterm_DuringALiveStream_TheStreamFinishes_NewChatsGetATyped503_AndTheProcessExitsCleanly()
    {
        await using var emulator = await EmulatorServer.StartAsync();
        using var sidecar = await SidecarProcess.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:ShutdownDelay"] = "00:00:03",
            ["Sidecar:Streams:DrainTimeout"] = "00:00:20",
            ["Sidecar:Resume:EventIds"] = "false",
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
        });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        using var call = await Chat.StartAsync(client, emulator, session, "/scenario gate:3");
        await call.Record.GateReached.DefaultTimeout();

        sidecar.Terminate();
        HttpResponseMessage refused;
        var deadline = Stopwatch.StartNew();
        do
        {
            // The signal is handled asynchronously: until then a new chat is still served.
            refused = await client.SendAsync(Chat.Post(Chat.NewSession(), "hello /scenario deltas:1")).DefaultTimeout();
            await refused.Content.LoadIntoBufferAsync();
        }
        while (refused.StatusCode == HttpStatusCode.OK && deadline.Elapsed < TaskTimeoutExtensions.DefaultTimeoutSpan);

        call.Record.ReleaseGate();
        var body = await call.Reader.ReadToEndAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("SIDECAR_DRAINING", (await ErrorJson.ReadAsync(refused)).GetProperty("errorCode").GetString());
        Assert.Equal(call.Record.SentBytes(), body);
        Assert.Equal(0, await sidecar.WaitForExitAsync());
    }
}

/// <summary>Clients that hold a connection without finishing their request are cut off by Kestrel's limits.</summary>
public sealed class SlowClientTests
{
    [Fact]
    public async Task SlowLoris_HeadersThatNeverEnd_TheConnectionIsClosed_AndTheSidecarServesOthers()
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Listen:RequestHeadersTimeout"] = "00:00:01",
        });

        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(sidecar.PublicAddress.Host, sidecar.PublicAddress.Port);
        await socket.SendAsync("POST /api/v/c010/slow HTTP/1.1\r\nHost: x\r\nX-Slow: "u8.ToArray());

        // Nothing more is sent: the server gives up on the request and closes (a 408, then the end).
        var buffer = new byte[4096];
        var received = new List<byte>();
        int read;
        while ((read = await socket.ReceiveAsync(buffer).DefaultTimeout()) > 0)
        {
            received.AddRange(buffer.AsSpan(0, read).ToArray());
        }

        Assert.StartsWith("HTTP/1.1 408", System.Text.Encoding.ASCII.GetString([.. received]), StringComparison.Ordinal);
        using var client = sidecar.CreateClient();
        using var answer = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario deltas:1")).DefaultTimeout();
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
    }

    [Theory]
    // A bare CR or LF inside a header value (request splitting), a header line without a colon,
    // an encoded CRLF in the session id, and in Last-Event-ID's query form.
    [InlineData("POST /api/v/c010/sinj HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\n{}", 400)]
    [InlineData("POST /api/v/c010/sinj HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: a\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\n{}", 400)]
    [InlineData("GET /api/v/c010/sinj HTTP/1.1\r\nHost: x\r\nConnection: close\r\nLast-Event-ID 5\r\n\r\n", 400)]
    [InlineData("GET /api/v/c010/s%0d%0aSet-Cookie:%20evil=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400)]
    [InlineData("GET /api/v/c010/sinj?lastEventId=1%0d%0aSet-Cookie:%20evil=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400)]
    public async Task HeaderInjection_IsRefused_NothingReachesTheUpstream_AndNoHeaderIsSplit(string request, int status)
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address);

        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(sidecar.PublicAddress.Host, sidecar.PublicAddress.Port);
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(request));
        var buffer = new byte[4096];
        var received = new List<byte>();
        int read;
        while ((read = await socket.ReceiveAsync(buffer).DefaultTimeout()) > 0)
        {
            received.AddRange(buffer.AsSpan(0, read).ToArray());
        }

        var answer = System.Text.Encoding.ASCII.GetString([.. received]);
        Assert.StartsWith($"HTTP/1.1 {status}", answer, StringComparison.Ordinal);
        Assert.DoesNotContain("evil", answer, StringComparison.OrdinalIgnoreCase);
        Assert.False(emulator.Journal.ForSession("sinj").IsCompleted);
        Assert.Empty(emulator.Journal.OtherRequests);

        // The process is unharmed.
        using var client = sidecar.CreateClient();
        using var next = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario deltas:1")).DefaultTimeout();
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task MaxConnections_LimitsThePublicPortOnly_AndCountsWhatItCloses()
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Listen:MaxConnections"] = "2",
        });
        using var rejected = new InstrumentCounter(sidecar, "sidecar.connections.rejected");

        // Two keep-alive connections, each with an answered request: both held.
        var held = new List<System.Net.Sockets.Socket>();
        for (var i = 0; i < 2; i++)
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            await socket.ConnectAsync(sidecar.PublicAddress.Host, sidecar.PublicAddress.Port);
            await socket.SendAsync("GET /api/v/c010/held HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
            var buffer = new byte[4096];
            var read = await socket.ReceiveAsync(buffer).DefaultTimeout();
            Assert.StartsWith("HTTP/1.1 204", System.Text.Encoding.ASCII.GetString(buffer, 0, read), StringComparison.Ordinal);
            held.Add(socket);
        }

        // A third is closed at once, and counted.
        using (var third = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp))
        {
            var closed = await Record.ExceptionAsync(async () =>
            {
                // Closed so fast that even the connect may see the reset.
                await third.ConnectAsync(sidecar.PublicAddress.Host, sidecar.PublicAddress.Port);
                await third.SendAsync("GET /api/v/c010/third HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
                Assert.Equal(0, await third.ReceiveAsync(new byte[4096]).DefaultTimeout());
            });
            Assert.True(closed is null or System.Net.Sockets.SocketException, closed?.ToString());
        }

        await rejected.WaitForTotalAsync(1).DefaultTimeout();

        // The management port is not limited.
        using (var management = new HttpClient { BaseAddress = sidecar.ManagementAddress })
        {
            Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/healthz").DefaultTimeout()).StatusCode);
        }

        // Once a held connection closes, a new one is served.
        held[0].Dispose();
        using var client = sidecar.CreateClient();
        HttpResponseMessage? answer = null;
        using var timeout = new CancellationTokenSource(TaskTimeoutExtensions.DefaultTimeoutSpan);
        while (answer is null)
        {
            try
            {
                answer = await client.GetAsync("/api/v/c010/after", timeout.Token);
            }
            catch (HttpRequestException)
            {
                // Closed before the server noticed the freed slot: try again.
            }
        }

        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        answer.Dispose();
        held[1].Dispose();
    }
}
