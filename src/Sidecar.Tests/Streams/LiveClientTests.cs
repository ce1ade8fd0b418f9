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
            new StreamOptions { MaxClientBacklogBytes = 300 },
            TimeProvider.System,
            NullLogger.Instance,
            app.Services.GetRequiredService<SidecarMetrics>(),
            tee: null);
        pump.Start();
        Assert.Equal(StreamOutcome.Completed, await pump.Completion.DefaultTimeout());
        Assert.True(pump.IsLiveCut);

        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(body));
        var lifetime = new AbortRecorder();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);

        await app.Services.GetRequiredService<LiveClient>().ServeAsync(context, pump).DefaultTimeout();

        Assert.True(lifetime.Aborted);
        Assert.DoesNotContain("[DONE]", Encoding.UTF8.GetString(body.ToArray()), StringComparison.Ordinal);
    }

    private sealed class AbortRecorder : IHttpRequestLifetimeFeature
    {
        public bool Aborted { get; private set; }

        public CancellationToken RequestAborted { get; set; }

        public void Abort() => Aborted = true;
    }
}
