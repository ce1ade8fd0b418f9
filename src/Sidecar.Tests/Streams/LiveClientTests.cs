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
        var storeOptions = new StreamStoreOptions();
        var time = new WatchedTimers(DateTimeOffset.UnixEpoch, storeOptions.OperationTimeout);
        using var services = new ServiceCollection().AddMetrics().AddSingleton<SidecarMetrics>().BuildServiceProvider();
        var metrics = services.GetRequiredService<SidecarMetrics>();
        var streamOptions = new StreamOptions { MaxClientBacklogBytes = 300 };
        var resumeOptions = new FixedOptions<ResumeOptions>(new ResumeOptions { EventIds = false });
        var store = new InMemoryStreamStore(Options.Create(storeOptions), Options.Create(streamOptions), time);
        using var writer = new StoreWriter(store, Options.Create(storeOptions), time, metrics, NullLogger<StoreWriter>.Instance);
        var awaits = new SignallingLogger<LiveClient>("LiveClientAwaitsRegistration");
        var client = new LiveClient(
            new FixedOptions<StreamOptions>(streamOptions),
            resumeOptions,
            new StoreReplay(store, resumeOptions, new FixedOptions<StreamOptions>(streamOptions), time, metrics, NullLogger<StoreReplay>.Instance),
            time,
            metrics,
            awaits);

        // The writer is not started: the registration waits in its queue.
        var tee = writer.Open(new StreamRegistration("m1", "s1", "c010", "owner", "replica", DateTimeOffset.UnixEpoch.AddHours(1)));
        var answer = Answer();
        var upstream = new MemoryStream(Encoding.UTF8.GetBytes(answer));
        var pump = new StreamPump(new ChatExchange("c010", "s1", "r1", "owner"), upstream, upstream, "m1", streamOptions, time, NullLogger.Instance, metrics, tee);
        var (context, body, lifetime) = Context();
        try
        {
            var served = client.ServeAsync(context, pump);
            pump.Start();

            // Both the headers and the pump wait for the registration until the operation timeout.
            Assert.True(await time.Created.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            Assert.True(await time.Created.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            time.Advance(storeOptions.OperationTimeout);
            Assert.Equal(StreamOutcome.Completed, await pump.Completion.DefaultTimeout());
            Assert.True(pump.IsLiveBehind);

            // Behind, with nothing stored yet: the client waits for the registration (it says so)
            // rather than end at once.
            var waiting = awaits.Logged.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan);
            await Task.WhenAny(served, waiting).DefaultTimeout();
            if (stored)
            {
                await writer.StartAsync(CancellationToken.None);
            }
            else
            {
                // What the writer does when the store goes away: the stream loses resume.
                tee.Lose("store_down");
            }

            await served.DefaultTimeout();
            var sent = Encoding.UTF8.GetString(body.ToArray());
            if (stored)
            {
                Assert.Equal(answer, sent);
            }
            else
            {
                // What the client was sent live, then the typed error and [DONE].
                var parts = Endings.Parts(sent);
                Assert.Equal(Endings.Parts(answer).Take(parts.Count - 2), parts[..^2]);
                Assert.Equal("[DONE]", parts[^1]);
                var errorText = JsonDocument.Parse(JsonDocument.Parse(parts[^2]).RootElement.GetProperty("errorText").GetString()!).RootElement;
                ErrorJson.AssertContractShape(errorText, "SERVICE_UNAVAILABLE", 503);
                Assert.Equal("RESUME_UNAVAILABLE", errorText.GetProperty("errorCode").GetString());
            }

            Assert.False(lifetime.Aborted);
            Assert.True(await waiting);
        }
        finally
        {
            pump.Stop(StreamOutcome.ShuttingDown);
            await pump.Completion.DefaultTimeout();
            await writer.StopAsync(CancellationToken.None);
        }
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

    private sealed class AbortRecorder : IHttpRequestLifetimeFeature
    {
        public bool Aborted { get; private set; }

        public CancellationToken RequestAborted { get; set; }

        public void Abort() => Aborted = true;
    }
}
