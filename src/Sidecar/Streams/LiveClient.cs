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
/// comments while the stream is quiet. A client that falls too far behind reads on from the store
/// at its own pace, from the event after the last one it was given.
/// </summary>
internal sealed class LiveClient(
    IOptionsMonitor<StreamOptions> options,
    IOptionsMonitor<ResumeOptions> resumeOptions,
    StoreReplay replay,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<LiveClient> logger)
{
    public async Task ServeAsync(HttpContext context, StreamPump pump)
    {
        var response = context.Response;
        var aborted = context.RequestAborted;
        var servedToTheEnd = false;
        try
        {
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            pump.LiveClientTooSlow = context.Abort;
            var heartbeat = new HeartbeatTicker(pump);
            var interval = options.CurrentValue.HeartbeatInterval;
            using var timer = interval > TimeSpan.Zero
                ? time.CreateTimer(static s => ((HeartbeatTicker)s!).Tick(), heartbeat, interval, interval)
                : null;

            if (pump.Tee is { Registered.IsCompleted: false } tee)
            {
                // Once the client has the headers it may leave and resume, on any replica: the
                // stream is registered in the store first (bounded; the pump waits for it too).
                await tee.WaitRegisteredAsync(aborted);
            }

            // The upstream has sent its headers: the client gets them now, not with the first event
            // (StartAsync only queues them).
            await response.StartAsync(aborted);
            await response.BodyWriter.FlushAsync(aborted);
            var copied = await CopyAsync(response.BodyWriter, pump, heartbeat, aborted);
            if (copied.Behind)
            {
                // Fell too far behind: the rest comes from the store, ending as a resume ends.
                timer?.Dispose();
                if (pump.Tee is { Registered.IsCompleted: false } unregistered
                    && !await AwaitRegistrationAsync(response.BodyWriter, pump, unregistered, aborted))
                {
                    // The client went away while it waited.
                    return;
                }

                var result = await replay.CopyAsync(context, pump.Exchange.SessionId, pump.State.MessageId!, copied.Next);
                servedToTheEnd = result != ReplayResult.ClientLeft;
                return;
            }

            servedToTheEnd = copied.Ended;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client went away mid-write.
        }
        finally
        {
            // The request is over once this returns: the pump must not abort a connection later.
            pump.LiveClientTooSlow = null;
            if (!servedToTheEnd)
            {
                metrics.ClientDisconnected("streaming");
                Log.ClientDisconnected(logger, pump.Exchange.SessionId, pump.State.MessageId);
                pump.DetachLiveClient();
            }
        }

        if (servedToTheEnd && !pump.State.DoneSeen && !pump.IsLiveBehind)
        {
            // Every pump ends its stream with [DONE], after a typed error part when it failed; a
            // feed that closed without it is a bug: close the connection, so that the client does
            // not take a truncated answer for a complete one.
            context.Abort();
        }

        if (pump.IsLiveCut)
        {
            // Cut off for falling too far behind. The pump closes the connection itself, unless
            // it cut before this client was attached (a pump that ran ahead of the request's
            // thread): a cut response must never end like a whole one.
            context.Abort();
        }
    }

    /// <summary>
    /// The headers went out without the stream's registration (the store slower than its operation
    /// timeout), and the store holds nothing of the stream until it is written: waits for it to
    /// settle (written, failed, or the stream lost resume), with a heartbeat comment on every quiet
    /// interval, for at most the store's lease from here. Past it, the replay reads the store
    /// anyway, and ends with a typed resume error if the stream is still not there. False when the
    /// client went away.
    /// </summary>
    private async Task<bool> AwaitRegistrationAsync(System.IO.Pipelines.PipeWriter writer, StreamPump pump, Store.StreamTee tee, CancellationToken aborted)
    {
        Log.LiveClientAwaitsRegistration(logger, pump.Exchange.SessionId, pump.State.MessageId);
        var limit = tee.SettleLimit;
        var interval = options.CurrentValue.HeartbeatInterval;
        var started = time.GetTimestamp();
        while (true)
        {
            var left = limit - time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                Log.LiveClientRegistrationUnsettled(logger, pump.Exchange.SessionId, pump.State.MessageId, limit.TotalSeconds);
                return true;
            }

            if (await tee.WaitRegisteredAsync(interval > TimeSpan.Zero && interval < left ? interval : left, aborted))
            {
                return true;
            }

            if (interval > TimeSpan.Zero && time.GetElapsedTime(started) < limit)
            {
                writer.Write(SseBytes.KeepAlive);
                var flushed = await writer.FlushAsync(aborted);
                metrics.HeartbeatSent();
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    return false;
                }
            }
        }
    }

    /// <summary>
    /// Copies events until the live feed ends (Ended), the client goes away (neither), or the client
    /// fell behind (Behind, with the sequence of the next event it needs).
    /// </summary>
    private async Task<(bool Ended, bool Behind, long Next)> CopyAsync(System.IO.Pipelines.PipeWriter writer, StreamPump pump, HeartbeatTicker heartbeat, CancellationToken aborted)
    {
        // The client leaving ends the feed: one registration, rather than a cancellable wait per read.
        (bool Ended, bool Behind, long Next) copied;
        try
        {
            using (aborted.Register(static p => ((StreamPump)p!).DetachLiveClient(), pump))
            {
                copied = await CopyEventsAsync(writer, pump, heartbeat, aborted);
            }
        }
        catch (Exception)
        {
            // A failed write (the client left): the same, before the exception unwinds the request.
            await Task.Yield();
            throw;
        }

        // The copy runs on the thread that hands the events over (the pump's, under its emission
        // lock, or a timer's): what follows the live feed (the end of the response, a replay)
        // runs elsewhere.
        await Task.Yield();
        return copied;
    }

    private async Task<(bool Ended, bool Behind, long Next)> CopyEventsAsync(System.IO.Pipelines.PipeWriter writer, StreamPump pump, HeartbeatTicker heartbeat, CancellationToken aborted)
    {
        var live = pump.Live;
        var eventIds = resumeOptions.CurrentValue.EventIds;
        long next = 0;
        while (await live.WaitToReadAsync(CancellationToken.None))
        {
            var written = 0;
            {
                var output = new SseEventWriter(writer);
                while (live.TryRead(out var events))
                {
                    if (pump.IsLiveBehind)
                    {
                        // Checked after the read: events read once the pump fell back may follow one
                        // its drain took, so they are not written; the store has them all.
                        break;
                    }

                    for (var i = 0; i < events.Count; i++)
                    {
                        var evt = events[i];
                        if (evt.Sequence >= 0)
                        {
                            next = evt.Sequence + 1;
                        }

                        output.Write(eventIds ? evt.Sequence : -1, evt.Raw);
                        if (ReferenceEquals(evt, SseEvent.Heartbeat))
                        {
                            metrics.HeartbeatSent();
                        }
                        else
                        {
                            written += evt.Raw.Length;
                            heartbeat.Written = true;
                        }
                    }
                }

                output.Commit();
            }

            // One flush per batch: a backlog goes out together, a lone event goes out at once.
            var flushed = await writer.FlushAsync(aborted);
            pump.LiveBytesWritten(written);
            if (flushed.IsCompleted || flushed.IsCanceled)
            {
                return (false, false, next);
            }

            if (pump.IsLiveBehind)
            {
                return (false, true, next);
            }
        }

        if (pump.IsLiveBehind && !aborted.IsCancellationRequested)
        {
            return (false, true, next);
        }

        // The feed also ends when the pump cut a client that fell too far behind.
        return (!aborted.IsCancellationRequested && !pump.IsLiveCut, false, next);
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
