using System.Buffers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Sse;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// Writes a pump's events to the client that started the stream, as they arrive, with heartbeat
/// comments while the stream is quiet.
/// </summary>
internal sealed class LiveClient(
    IOptionsMonitor<StreamOptions> options,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<LiveClient> logger)
{
    public async Task ServeAsync(HttpContext context, StreamPump pump)
    {
        var response = context.Response;
        var aborted = context.RequestAborted;
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var heartbeat = new HeartbeatTicker(pump);
        var interval = options.CurrentValue.HeartbeatInterval;
        using var timer = interval > TimeSpan.Zero
            ? time.CreateTimer(static s => ((HeartbeatTicker)s!).Tick(), heartbeat, interval, interval)
            : null;

        var clientGone = false;
        try
        {
            // The upstream has sent its headers: the client gets them now, not with the first event.
            await response.StartAsync(aborted);
            var writer = response.BodyWriter;
            var live = pump.Live;
            while (await live.WaitToReadAsync(aborted))
            {
                while (live.TryRead(out var evt))
                {
                    writer.Write(evt.Raw);
                    if (ReferenceEquals(evt, SseEvent.Heartbeat))
                    {
                        metrics.HeartbeatSent();
                    }
                    else
                    {
                        heartbeat.Written = true;
                    }
                }

                // One flush per batch: a backlog goes out together, a lone event goes out at once.
                var flushed = await writer.FlushAsync(aborted);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    clientGone = true;
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            clientGone = true;
        }

        if (clientGone || aborted.IsCancellationRequested)
        {
            Log.ClientDisconnected(logger, pump.Exchange.SessionId, pump.State.MessageId, pump.DrainsWithoutClient);
            pump.DetachLiveClient();
            return;
        }

        var outcome = await pump.Completion;
        if (!outcome.UpstreamEndedCleanly())
        {
            // The upstream's body failed or was cut off: end the client's response the same way,
            // so the client does not mistake a truncated answer for a complete one.
            context.Abort();
        }
    }

    /// <summary>Queues a heartbeat on every tick that found no event written since the previous one.</summary>
    private sealed class HeartbeatTicker(StreamPump pump)
    {
        public volatile bool Written;

        public void Tick()
        {
            if (!Written)
            {
                pump.EnqueueHeartbeat();
            }

            Written = false;
        }
    }
}
