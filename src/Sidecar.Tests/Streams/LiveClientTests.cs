using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Sidecar.Streams;
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

    /// <summary>A pump over a whole answer (start, five 200-byte deltas, finish, [DONE]), run to its end with no client attached.</summary>
    private static async Task<StreamPump> RunPumpAsync(Microsoft.AspNetCore.Builder.WebApplication app, long maxClientBacklogBytes)
    {
        var events = new StringBuilder("data: {\"type\":\"start\",\"messageId\":\"m1\"}\n\ndata: {\"type\":\"text-start\",\"id\":\"t\"}\n\n");
        for (var i = 0; i < 5; i++)
        {
            events.Append("data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"").Append('x', 200).Append("\"}\n\n");
        }

        events.Append("data: {\"type\":\"text-end\",\"id\":\"t\"}\n\ndata: {\"type\":\"finish\"}\n\ndata: [DONE]\n\n");
        var upstream = new MemoryStream(Encoding.UTF8.GetBytes(events.ToString()));
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
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(body));
        var lifetime = new AbortRecorder();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);

        await app.Services.GetRequiredService<LiveClient>().ServeAsync(context, pump).DefaultTimeout();

        return (lifetime.Aborted, Encoding.UTF8.GetString(body.ToArray()));
    }

    private sealed class AbortRecorder : IHttpRequestLifetimeFeature
    {
        public bool Aborted { get; private set; }

        public CancellationToken RequestAborted { get; set; }

        public void Abort() => Aborted = true;
    }
}
