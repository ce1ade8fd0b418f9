using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

public sealed class LiveClientTests
{
    [Fact]
    public async Task ClientCutOffBeforeItWasAttached_HasItsConnectionClosed_NotAWholeLookingEnd()
    {
        // The pump runs ahead of the request's thread (a loaded machine): it cuts the client off
        // for falling behind, with no stored copy to read on from, before the live client is
        // attached to it. The response must then not end like a whole answer.
        await using var app = SidecarServer.Build(new Uri("http://127.0.0.1:1/"));
        var pump = await RunPumpAsync(app, maxClientBacklogBytes: 300);
        Assert.True(pump.IsLiveCut);

        var (aborted, _) = await ServeAsync(app, pump);

        Assert.True(aborted);
    }

    [Fact]
    public async Task ClientAttachedAfterAWholeAnswer_GetsItToDone_WithoutAnAbort()
    {
        // The same pump ahead of its client, not cut (the backlog within the bound): the client
        // gets the answer and [DONE], and its connection is left alone.
        await using var app = SidecarServer.Build(new Uri("http://127.0.0.1:1/"));
        var pump = await RunPumpAsync(app, maxClientBacklogBytes: 1024 * 1024);
        Assert.False(pump.IsLiveCut);

        var (aborted, body) = await ServeAsync(app, pump);

        Assert.False(aborted);
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ClientBehindBeforeTheRegistrationIsStored_ReadsOnOnceItSettles(bool stored)
    {
        // The store is slow to take the stream's registration (a loaded replica): the client's
        // headers and the pump's reads wait for it only up to the store's operation timeout, then go
        // on. The client falls behind at once and must read on from the store, which holds nothing
        // of the stream until the registration is written: it waits for it to settle. Stored, the
        // client gets the whole answer; lost, a typed resume error; never a silent cut.
        await using var stream = new UnregisteredStream(heartbeat: TimeSpan.FromSeconds(13));
        var served = await stream.FallBehindAsync();

        // Behind, with nothing stored yet: the client waits for the registration (it says so)
        // rather than end at once.
        var waiting = stream.Awaits.Logged.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan);
        await Task.WhenAny(served, waiting).DefaultTimeout();
        if (stored)
        {
            await stream.Writer.StartAsync(CancellationToken.None);
        }
        else
        {
            // What the writer does when the store goes away: the stream loses resume.
            stream.Tee.Lose("store_down");
        }

        await served.DefaultTimeout();
        if (stored)
        {
            Assert.Equal(Answer(), stream.Sent);
        }
        else
        {
            AssertResumeUnavailableAfterALivePrefix(stream.Sent);
        }

        Assert.False(stream.Lifetime.Aborted);
        Assert.True(await waiting);
    }

    [Fact]
    public async Task ClientBehindBeforeTheRegistrationIsStored_GetsHeartbeats_AndATypedErrorOnceTheLeaseIsOver()
    {
        // The registration never settles (a store that takes writes but never answers): the client
        // is kept alive with heartbeats while it waits, for at most the store's lease, then told.
        var heartbeat = TimeSpan.FromSeconds(5);
        await using var stream = new UnregisteredStream(heartbeat);
        var served = await stream.FallBehindAsync();
        Assert.True(await stream.Awaits.Logged.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));

        // The lease (20 s) in heartbeat intervals: a heartbeat after each but the last.
        for (var waited = TimeSpan.Zero; waited < UnregisteredStream.Lease; waited += heartbeat)
        {
            Assert.True(await stream.Time.CreatedWith(heartbeat).WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            Assert.False(served.IsCompleted);
            stream.Time.Advance(heartbeat);
        }

        await served.DefaultTimeout();
        Assert.Equal(3, stream.Sent.Split(": keep-alive\n\n").Length - 1);
        AssertResumeUnavailableAfterALivePrefix(stream.Sent);
        Assert.False(stream.Lifetime.Aborted);
    }

    [Fact]
    public async Task ClientBehindBeforeTheRegistrationIsStored_LeavingWhileItWaits_EndsItsRequest()
    {
        await using var stream = new UnregisteredStream(heartbeat: TimeSpan.FromSeconds(13));
        var served = await stream.FallBehindAsync();
        Assert.True(await stream.Awaits.Logged.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));

        stream.Lifetime.Abort();

        // Neither an error nor an end: the request is over, untouched.
        await served.DefaultTimeout();
        Assert.DoesNotContain("\"type\":\"error\"", stream.Sent, StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", stream.Sent, StringComparison.Ordinal);
    }

    /// <summary>What the client was sent live (a prefix of the answer), then a typed resume error and [DONE].</summary>
    private static void AssertResumeUnavailableAfterALivePrefix(string sent)
    {
        var parts = Endings.Parts(sent);
        Assert.Equal(Endings.Parts(Answer()).Take(parts.Count - 2), parts[..^2]);
        Endings.AssertResumeUnavailableEnding(parts);
    }

    /// <summary>A whole answer: start, five 200-byte deltas, finish, [DONE].</summary>
    private static string Answer()
    {
        var events = new StringBuilder("data: {\"type\":\"start\",\"messageId\":\"m1\"}\n\ndata: {\"type\":\"text-start\",\"id\":\"t\"}\n\n");
        for (var i = 0; i < 5; i++)
        {
            events.Append("data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"").Append('x', 200).Append("\"}\n\n");
        }

        events.Append("data: {\"type\":\"text-end\",\"id\":\"t\"}\n\ndata: {\"type\":\"finish\"}\n\ndata: [DONE]\n\n");
        return events.ToString();
    }

    /// <summary>A pump over a whole answer (start, five 200-byte deltas, finish, [DONE]), run to its end with no client attached.</summary>
    private static async Task<StreamPump> RunPumpAsync(Microsoft.AspNetCore.Builder.WebApplication app, long maxClientBacklogBytes)
    {
        var upstream = new MemoryStream(Encoding.UTF8.GetBytes(Answer()));
        var pump = new StreamPump(
            new ChatExchange("c010", "s1", "r1", "owner"),
            upstream,
            upstream,
            "m1",
            new StreamOptions { MaxClientBacklogBytes = maxClientBacklogBytes },
            TimeProvider.System,
            NullLogger.Instance,
            app.Services.GetRequiredService<SidecarMetrics>(),
            tee: null);
        pump.Start();
        Assert.Equal(StreamOutcome.Completed, await pump.Completion.DefaultTimeout());
        return pump;
    }

    /// <summary>Serves the pump to a client; whether its connection was aborted, and what it was sent.</summary>
    private static async Task<(bool Aborted, string Body)> ServeAsync(Microsoft.AspNetCore.Builder.WebApplication app, StreamPump pump)
    {
        var (context, body, lifetime) = Context();
        using var _ = lifetime;
        await app.Services.GetRequiredService<LiveClient>().ServeAsync(context, pump).DefaultTimeout();

        return (lifetime.Aborted, Encoding.UTF8.GetString(body.ToArray()));
    }

    /// <summary>A request's context whose response goes to <c>Body</c>, its aborts recorded.</summary>
    private static (DefaultHttpContext Context, MemoryStream Body, AbortRecorder Lifetime) Context()
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(body));
        var lifetime = new AbortRecorder();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        return (context, body, lifetime);
    }

    /// <summary>
    /// A teed stream whose registration waits in the queue of a store writer not yet started (an
    /// in-memory store, a fake clock, a 20 s lease), served to a client that may fall 300 bytes behind.
    /// </summary>
    private sealed class UnregisteredStream : IAsyncDisposable
    {
        // A lease no other timer's due time is a fraction of (the heartbeats of these tests).
        public static readonly TimeSpan Lease = TimeSpan.FromSeconds(20);

        private readonly StreamStoreOptions _storeOptions = new() { LeaseDuration = Lease };
        private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().AddSingleton<SidecarMetrics>().BuildServiceProvider();
        private readonly LiveClient _client;
        private readonly StreamPump _pump;
        private readonly HttpContext _context;
        private readonly MemoryStream _body;
        private readonly TimeSpan _heartbeat;

        public UnregisteredStream(TimeSpan heartbeat)
        {
            _heartbeat = heartbeat;
            Time = new WatchedTimers(DateTimeOffset.UnixEpoch, _storeOptions.OperationTimeout, heartbeat);
            var metrics = _services.GetRequiredService<SidecarMetrics>();
            var streamOptions = new StreamOptions { MaxClientBacklogBytes = 300, HeartbeatInterval = heartbeat };
            var resumeOptions = new FixedOptions<ResumeOptions>(new ResumeOptions { EventIds = false });
            var store = new InMemoryStreamStore(Options.Create(_storeOptions), Options.Create(streamOptions), Time);
            Writer = new StoreWriter(store, Options.Create(_storeOptions), Time, metrics, NullLogger<StoreWriter>.Instance);
            _client = new LiveClient(
                new FixedOptions<StreamOptions>(streamOptions),
                resumeOptions,
                new StoreReplay(store, resumeOptions, new FixedOptions<StreamOptions>(streamOptions), Options.Create(_storeOptions), Time, metrics, NullLogger<StoreReplay>.Instance),
                Time,
                metrics,
                Awaits);
            Tee = Writer.Open(new StreamRegistration("m1", "s1", "c010", "owner", "replica", DateTimeOffset.UnixEpoch.AddHours(1)));
            var upstream = new MemoryStream(Encoding.UTF8.GetBytes(Answer()));
            _pump = new StreamPump(new ChatExchange("c010", "s1", "r1", "owner"), upstream, upstream, "m1", streamOptions, Time, NullLogger.Instance, metrics, Tee);
            (_context, _body, Lifetime) = Context();
        }

        public WatchedTimers Time { get; }

        public StoreWriter Writer { get; }

        public StreamTee Tee { get; }

        public SignallingLogger<LiveClient> Awaits { get; } = new("LiveClientAwaitsRegistration");

        public AbortRecorder Lifetime { get; }

        public string Sent => Encoding.UTF8.GetString(_body.ToArray());

        /// <summary>
        /// Serves the stream; once the client's headers and the pump have waited for the registration
        /// for the store's operation timeout, the pump reads the whole answer and the client falls
        /// behind. Returns the serving task.
        /// </summary>
        public async Task<Task> FallBehindAsync()
        {
            var served = _client.ServeAsync(_context, _pump);
            _pump.Start();

            // Its heartbeat timer, then the waits of the headers and the pump.
            Assert.True(await Time.CreatedWith(_heartbeat).WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            Assert.True(await Time.Created.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            Assert.True(await Time.Created.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            Time.Advance(_storeOptions.OperationTimeout);
            Assert.Equal(StreamOutcome.Completed, await _pump.Completion.DefaultTimeout());
            Assert.True(_pump.IsLiveBehind);
            return served;
        }

        public async ValueTask DisposeAsync()
        {
            // A failed assertion must leave nothing waiting.
            Lifetime.Abort();
            _pump.Stop(StreamOutcome.ShuttingDown);
            await _pump.Completion.DefaultTimeout();
            await Writer.StopAsync(CancellationToken.None);
            Writer.Dispose();
            await _services.DisposeAsync();
            Lifetime.Dispose();
        }
    }

    /// <summary>Signals each time the event of the given name is logged.</summary>
    private sealed class SignallingLogger<T>(string eventName) : ILogger<T>
    {
        public SemaphoreSlim Logged { get; } = new(0);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Name == eventName)
            {
                Logged.Release();
            }
        }
    }

    private sealed class AbortRecorder : IHttpRequestLifetimeFeature, IDisposable
    {
        private readonly CancellationTokenSource _aborted = new();

        public bool Aborted { get; private set; }

        public CancellationToken RequestAborted
        {
            get => _aborted.Token;
            set => throw new NotSupportedException();
        }

        public void Abort()
        {
            Aborted = true;
            _aborted.Cancel();
        }

        public void Dispose() => _aborted.Dispose();
    }
}
