using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Errors;
using Sidecar.Sse;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>How a replay from the store ended.</summary>
internal enum ReplayResult
{
    /// <summary>The stored stream's own ending (<c>[DONE]</c>, its error part) reached the client.</summary>
    Ended,

    /// <summary>The stream ended without an ending of its own: the client got a typed interruption error and <c>[DONE]</c>.</summary>
    Interrupted,

    /// <summary>The store no longer held the whole stream, or failed: the client got a typed resume error and <c>[DONE]</c>.</summary>
    StoreFailed,

    /// <summary>The client went away.</summary>
    ClientLeft,
}

/// <summary>
/// Writes a stored stream to a client from a given event on: replays what is stored, follows the
/// stream live until it ends, and always ends the response with a well-formed final part and
/// <c>[DONE]</c>. Serves resumes (on any replica) and live clients that fell too far behind to be
/// fed from memory.
/// </summary>
internal sealed class StoreReplay(
    IStreamStore store,
    IOptionsMonitor<ResumeOptions> options,
    IOptionsMonitor<StreamOptions> streamOptions,
    IOptions<StreamStoreOptions> storeOptions,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<StoreReplay> logger)
{
    // A store call that failed is tried again at once, then after growing delays up to this.
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(1);

    // The first read is small so that the first events go out at once; the rest come in reads of
    // about ReadBytes by the largest event seen so far (artifact parts carry whole documents), each
    // at most twice the previous one, within bounds.
    internal const int FirstReadBatch = 64;
    private const int MaxReadBatch = 4096;
    private const int MinReadBatch = 16;
    private const long ReadBytes = 1024 * 1024;

    /// <summary>
    /// Copies the stream <paramref name="messageId"/> from event <paramref name="from"/> on to the
    /// response (its headers already set), then its ending.
    /// </summary>
    public async Task<ReplayResult> CopyAsync(HttpContext context, string sessionId, string messageId, long from, Task<IReadOnlyList<StoredEvent>>? head = null)
    {
        using var deadline = new CancellationTokenSource(streamOptions.CurrentValue.MaxDuration, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, context.RequestAborted);
        var token = linked.Token;
        var writer = context.Response.BodyWriter;
        var cursor = new Cursor(from);
        try
        {
            // StartAsync only queues the headers: flush them, the reader may wait long for an event.
            await context.Response.StartAsync(token);
            await writer.FlushAsync(token);
            var (ending, failure) = await FollowAsync(context, messageId, writer, cursor, head, token);
            var result = ReplayResult.Ended;
            var lastPart = cursor.Last.IsEmpty ? UiPartType.None : SseEvent.Parse(new ReadOnlySequence<byte>(cursor.Last), terminated: true).Part.Type;
            if (lastPart != UiPartType.Done)
            {
                CloseOpenEvent(writer, cursor);

                // A stream that did not end well says so, once: never a bare [DONE] after half an answer.
                failure ??= ending == StoredStreamState.Failed && lastPart is not (UiPartType.Error or UiPartType.Abort)
                    ? SidecarError.StreamInterrupted
                    : null;
                if (failure is { } error)
                {
                    result = error == SidecarError.StreamInterrupted ? ReplayResult.Interrupted : ReplayResult.StoreFailed;
                    writer.Write(TerminalParts.Error(SidecarErrors.Create(error, time, context.TraceIdentifier, sessionId, messageId)));
                }

                writer.Write(TerminalParts.Done);
            }

            await writer.FlushAsync(token);
            return result;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return ReplayResult.ClientLeft;
        }
        catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
        {
            // The store failed mid-replay: end cleanly, with the reason, rather than hang or reset.
            Log.ResumeStoreFailed(logger, sessionId, ex.GetType().Name);
            CloseOpenEvent(writer, cursor);
            writer.Write(TerminalParts.Error(SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, sessionId, messageId)));
            writer.Write(TerminalParts.Done);
            try
            {
                await writer.FlushAsync(CancellationToken.None);
            }
            catch (Exception flush) when (flush is OperationCanceledException or IOException)
            {
                return ReplayResult.ClientLeft;
            }

            return ReplayResult.StoreFailed;
        }
    }

    /// <summary>The upstream died inside an event: close it, so that what follows stands alone.</summary>
    private static void CloseOpenEvent(PipeWriter writer, Cursor cursor)
    {
        if (!cursor.Last.IsEmpty && !EndsEvent(cursor.Last.Span))
        {
            writer.Write("\n\n"u8);
        }
    }

    /// <summary>Replays and follows until the stored [DONE], the stream's end, or a failure of the store's copy.</summary>
    private async Task<(StoredStreamState? Ending, SidecarError? Failure)> FollowAsync(HttpContext context, string messageId, PipeWriter writer, Cursor cursor, Task<IReadOnlyList<StoredEvent>>? head, CancellationToken token)
    {
        // Subscribed to the stream's changes only once the replay has caught up with it, so that
        // the first bytes of a replay never wait on a subscription.
        IStreamFollower? follower = null;
        try
        {
            var eventIds = options.CurrentValue.EventIds;
            var heartbeat = streamOptions.CurrentValue.HeartbeatInterval;
            var poll = options.CurrentValue.FollowPollInterval;
            var wait = heartbeat > TimeSpan.Zero && heartbeat < poll ? heartbeat : poll;
            var quietSince = time.GetTimestamp();

            // A comment on a connection quiet for the heartbeat interval, so that nothing between
            // the client and here takes it for dead.
            async Task KeepAliveIfQuietAsync()
            {
                if (heartbeat > TimeSpan.Zero && time.GetElapsedTime(quietSince) >= heartbeat)
                {
                    writer.Write(SseBytes.KeepAlive);
                    await writer.FlushAsync(token);
                    metrics.HeartbeatSent();
                    quietSince = time.GetTimestamp();
                }
            }

            // A store that fails for less than the writer's retry window (a stall, a failover, a
            // slow answer under load) is waited for, as the writer waits for it: nothing is lost
            // meanwhile, so the replay reads on. Past the window the failure ends the replay.
            async Task<T> RetryAsync<T>(Func<int, Task<T>> call)
            {
                long failingSince = 0;
                var delay = TimeSpan.Zero;
                for (var attempt = 0; ; attempt++)
                {
                    // The window counts from the start of the first failed call, as the writer's does.
                    var started = time.GetTimestamp();
                    try
                    {
                        return await call(attempt);
                    }
                    catch (Exception ex) when (!token.IsCancellationRequested)
                    {
                        var window = storeOptions.Value.EffectiveWriteRetryWindow;
                        if (attempt == 0)
                        {
                            failingSince = started;
                            Log.ReplayStoreRetrying(logger, messageId, ex.GetType().Name, window.TotalSeconds);
                        }

                        if (time.GetElapsedTime(failingSince) + delay >= window)
                        {
                            throw;
                        }
                    }

                    await KeepAliveIfQuietAsync();

                    if (delay > TimeSpan.Zero)
                    {
                        await Task.Delay(delay, time, token);
                    }

                    delay = delay == TimeSpan.Zero ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
                }
            }

            var from = cursor.Next;
            var missed = false;
            long largest = 0;
            var lastBatch = FirstReadBatch;
            while (true)
            {
                // Marked before the read: a change after it ends the next wait at once.
                var mark = follower?.Mark ?? 0;
                var batch = cursor.Next == from || largest == 0
                    ? FirstReadBatch
                    : (int)Math.Clamp(Math.Min(ReadBytes / largest, 2L * lastBatch), MinReadBatch, MaxReadBatch);
                lastBatch = batch;
                // The first read may have been sent already, with the stream's metadata.
                var sent = head;
                head = null;
                var events = await RetryAsync(attempt => attempt == 0 && sent is not null ? sent.WaitAsync(token) : store.ReadAsync(messageId, cursor.Next, batch, token));
                if (!CopyEvents(writer, events, eventIds, cursor, ref largest))
                {
                    // A gap (the store lost events): never skip over it.
                    Log.ReplayStoreLacks(logger, messageId, cursor.Next, "the store's next event is not the next one (a gap)");
                    return (null, SidecarError.ResumeUnavailable);
                }

                if (events.Count > 0)
                {
                    await writer.FlushAsync(token);
                    quietSince = time.GetTimestamp();
                    if (IsDone(cursor.Last.Span))
                    {
                        // The answer is whole; anything stored after it is not the client's.
                        return (StoredStreamState.Completed, null);
                    }

                    if (events.Count == batch)
                    {
                        continue;
                    }

                    if (follower is not null)
                    {
                        // Caught up with a live stream: its end or its next events are notified.
                        await follower.WaitAsync(mark, wait, token);
                        continue;
                    }
                }

                var current = await RetryAsync(_ => store.GetAsync(messageId, token));
                if (current is null || current.Incomplete)
                {
                    // Expired, evicted, or lost a write: the store no longer holds the whole answer.
                    Log.ReplayStoreLacks(logger, messageId, cursor.Next, current is null ? "the stream is not in the store" : "the stream's stored copy is incomplete");
                    return (null, SidecarError.ResumeUnavailable);
                }

                if (cursor.Next < current.EventCount)
                {
                    // Appended between the read and this look: read again. Twice in a row with
                    // nothing to read means the events are gone (evicted) while the count stayed.
                    if (events.Count == 0 && missed)
                    {
                        Log.ReplayStoreLacks(logger, messageId, cursor.Next, $"the store counts {current.EventCount} events but has none from here");
                        return (null, SidecarError.ResumeUnavailable);
                    }

                    missed = events.Count == 0;
                    continue;
                }

                missed = false;

                if (current.State != StoredStreamState.Live)
                {
                    return (current.State, null);
                }

                if (time.GetUtcNow() > current.LeaseExpiresAt && await RetryAsync(_ => StoreProducerLostAsync(context, current, token)))
                {
                    // The producing replica stopped renewing its lease: it is gone. Its ending is now
                    // stored for every resumer; replay it like any other event.
                    continue;
                }

                if (follower is null)
                {
                    // Caught up: follow from here on, and read once more for what came meanwhile.
                    follower = await RetryAsync(_ => store.FollowAsync(messageId, token));
                    continue;
                }

                await KeepAliveIfQuietAsync();

                await follower.WaitAsync(mark, wait, token);
            }
        }
        finally
        {
            if (follower is not null)
            {
                await follower.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Writes a read's events in order from the cursor on; false at a gap (what came before it is written).
    /// </summary>
    private bool CopyEvents(PipeWriter writer, IReadOnlyList<StoredEvent> events, bool eventIds, Cursor cursor, ref long largest)
    {
        var output = new SseEventWriter(writer);
        long bytes = 0;
        var whole = true;
        foreach (var evt in events)
        {
            if (evt.Sequence != cursor.Next)
            {
                whole = false;
                break;
            }

            output.Write(eventIds ? evt.Sequence : -1, evt.Raw.Span);
            bytes += evt.Raw.Length;
            largest = Math.Max(largest, evt.Raw.Length);
            cursor.Last = evt.Raw;
            cursor.Next = evt.Sequence + 1;
        }

        output.Commit();
        if (bytes > 0)
        {
            metrics.ResumeBytes(bytes);
        }

        return whole;
    }

    private static bool EndsEvent(ReadOnlySpan<byte> raw) => raw.EndsWith("\n\n"u8) || raw.EndsWith("\r\r"u8) || raw.EndsWith("\r\n\r\n"u8);

    private static bool IsDone(ReadOnlySpan<byte> raw) => raw.StartsWith("data: [DONE]"u8) || raw.StartsWith("data:[DONE]"u8);

    /// <summary>
    /// Stores the terminal error part at the stream's end and marks it failed, in one atomic step
    /// that only applies while the producer's lease has lapsed and nothing was appended since: when
    /// several resumers notice at once, one ending is stored.
    /// </summary>
    private async Task<bool> StoreProducerLostAsync(HttpContext context, StreamRecord stream, CancellationToken token)
    {
        var ending = TerminalParts.Error(SidecarErrors.Create(SidecarError.ProducerLost, time, context.TraceIdentifier, stream.SessionId, stream.MessageId));
        if (await store.EndAbandonedAsync(stream.MessageId, stream.EventCount, ending, time.GetUtcNow(), token))
        {
            Log.ProducerLost(logger, stream.SessionId, stream.MessageId, stream.ReplicaId);
            metrics.ProducerLost();
            return true;
        }

        // Another resumer stored the ending first (or the producer wrote on): re-read after a wait.
        return false;
    }

    /// <summary>Where the copy is: the next event to write and the last one written.</summary>
    private sealed class Cursor(long next)
    {
        public long Next { get; set; } = next;

        public ReadOnlyMemory<byte> Last { get; set; }
    }
}
