using System.Buffers;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Errors;
using Sidecar.Sse;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// GET on the chat route: resumes the session's active stream from the store, on any replica.
/// Replays everything stored from the first event (or after <c>Last-Event-ID</c>), follows the
/// stream live until it ends, then <c>[DONE]</c>. 204 when there is nothing to resume.
/// </summary>
internal sealed class ResumeEndpoint(
    IStreamStore store,
    StreamAccess access,
    IOptionsMonitor<ResumeOptions> options,
    IOptionsMonitor<StreamOptions> streamOptions,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<ResumeEndpoint> logger)
{
    // The first read is small so that the first events go out at once; the rest come in reads of
    // about ReadBytes by the largest event seen so far (artifact parts carry whole documents), each
    // at most twice the previous one, within bounds.
    private const int FirstReadBatch = 64;
    private const int MaxReadBatch = 4096;
    private const int MinReadBatch = 16;
    private const long ReadBytes = 1024 * 1024;

    /// <summary>
    /// Answers the resume, or returns false when the store knows no stream of the session: the
    /// request then goes to the upstream, which answers it as it always has (204, or 400 for an
    /// unknown agent).
    /// </summary>
    public async Task<bool> ServeAsync(HttpContext context, string agentId, string sessionId)
    {
        if (!TryReadLastEventId(context.Request, out var from))
        {
            metrics.Resume("invalid");
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.InvalidLastEventId, time, context.TraceIdentifier, sessionId));
            return true;
        }

        var (result, stream) = await access.FindOwnedAsync(context, agentId, sessionId);
        switch (result)
        {
            case StreamAccessResult.Invalid or StreamAccessResult.StoreFailed:
                Done(sessionId, result == StreamAccessResult.Invalid ? "invalid" : "failed");
                return true;
            case StreamAccessResult.NotFound:
                metrics.Resume("not_found");
                return false;
            case StreamAccessResult.Denied:
                Done(sessionId, "denied");
                await access.DenyAsync(context, sessionId);
                return true;
        }

        if (stream!.State == StoredStreamState.Completed)
        {
            Done(sessionId, "no_stream");
            StreamAccess.NoContent(context);
            return true;
        }

        if (stream.Incomplete)
        {
            Done(sessionId, "failed");
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, sessionId));
            return true;
        }

        Done(sessionId, "replayed");
        // A span for the replay, linked to the span of the stream it follows (on whichever replica).
        var links = stream.TraceParent is { } parent && System.Diagnostics.ActivityContext.TryParse(parent, null, out var linked)
            ? new[] { new System.Diagnostics.ActivityLink(linked) }
            : null;
        using var activity = SidecarActivity.Source.StartActivity("chat.resume", System.Diagnostics.ActivityKind.Internal, parentContext: default, links: links);
        activity?.SetTag("chat.session_id", sessionId);
        activity?.SetTag("chat.message_id", stream.MessageId);
        await ReplayAsync(context, stream, from);
        return true;
    }

    private void Done(string sessionId, string result)
    {
        metrics.Resume(result);
        Log.ResumeResult(logger, sessionId, result);
    }

    private async Task ReplayAsync(HttpContext context, StreamRecord stream, long from)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers.Connection = "keep-alive";
        response.Headers.ContentEncoding = "none";
        response.Headers["x-request-id"] = context.TraceIdentifier;
        response.Headers["x-session-id"] = stream.SessionId;
        response.Headers["x-agent-id"] = stream.AgentId;
        response.Headers["x-message-id"] = stream.MessageId;
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        using var deadline = new CancellationTokenSource(streamOptions.CurrentValue.MaxDuration, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, context.RequestAborted);
        var token = linked.Token;
        var writer = response.BodyWriter;
        var eventIds = options.CurrentValue.EventIds;
        var heartbeat = streamOptions.CurrentValue.HeartbeatInterval;
        var poll = options.CurrentValue.FollowPollInterval;
        var next = from;
        ReadOnlyMemory<byte> last = default;
        var quietSince = time.GetTimestamp();
        try
        {
            // StartAsync only queues the headers: flush them, the resumer may wait long for an event.
            await response.StartAsync(token);
            await writer.FlushAsync(token);
            var (ending, failure) = await CopyAsync();
            var lastPart = last.IsEmpty ? UiPartType.None : SseEvent.Parse(new ReadOnlySequence<byte>(last), terminated: true).Part.Type;
            if (lastPart != UiPartType.Done)
            {
                if (!last.IsEmpty && !EndsEvent(last.Span))
                {
                    // The upstream died inside an event: close it, so that what follows stands alone.
                    writer.Write("\n\n"u8);
                }

                // A stream that did not end well says so, once: never a bare [DONE] after half an answer.
                failure ??= ending == StoredStreamState.Failed && lastPart is not (UiPartType.Error or UiPartType.Abort)
                    ? SidecarError.StreamInterrupted
                    : null;
                if (failure is { } error)
                {
                    metrics.Resume(error == SidecarError.StreamInterrupted ? "interrupted" : "failed");
                    writer.Write(TerminalParts.Error(SidecarErrors.Create(error, time, context.TraceIdentifier, stream.SessionId, stream.MessageId)));
                }

                writer.Write(TerminalParts.Done);
            }

            await writer.FlushAsync(token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            // The resumer left.
        }
        catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
        {
            // The store failed mid-replay: end cleanly, with the reason, rather than hang or reset.
            Log.ResumeStoreFailed(logger, stream.SessionId, ex.GetType().Name);
            metrics.Resume("failed");
            if (!last.IsEmpty && !EndsEvent(last.Span))
            {
                writer.Write("\n\n"u8);
            }

            writer.Write(TerminalParts.Error(SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, stream.SessionId, stream.MessageId)));
            writer.Write(TerminalParts.Done);
            await writer.FlushAsync(CancellationToken.None);
        }

        // Replays and follows until the stored [DONE], the stream's end, or a failure of the store's copy.
        async Task<(StoredStreamState? Ending, SidecarError? Failure)> CopyAsync()
        {
            // Subscribed to the stream's changes only once the replay has caught up with it, so
            // that the first bytes of a replay never wait on a subscription.
            IStreamFollower? follower = null;
            try
            {
                return await FollowAsync();
            }
            finally
            {
                if (follower is not null)
                {
                    await follower.DisposeAsync();
                }
            }

            async Task<(StoredStreamState? Ending, SidecarError? Failure)> FollowAsync()
            {
                var missed = false;
                long largest = 0;
                var lastBatch = FirstReadBatch;
                while (true)
                {
                    // Marked before the read: a change after it ends the next wait at once.
                    var mark = follower?.Mark ?? 0;
                    var batch = next == from || largest == 0
                        ? FirstReadBatch
                        : (int)Math.Clamp(Math.Min(ReadBytes / largest, 2L * lastBatch), MinReadBatch, MaxReadBatch);
                    lastBatch = batch;
                    var events = await store.ReadAsync(stream.MessageId, next, batch, token);
                    foreach (var evt in events)
                    {
                        if (evt.Sequence != next && next != from)
                        {
                            return (null, SidecarError.ResumeUnavailable);
                        }

                        if (eventIds)
                        {
                            SseWriter.WriteId(writer, evt.Sequence);
                        }

                        writer.Write(evt.Raw.Span);
                        metrics.ResumeBytes(evt.Raw.Length);
                        largest = Math.Max(largest, evt.Raw.Length);
                        last = evt.Raw;
                        next = evt.Sequence + 1;
                    }

                    var wait = heartbeat > TimeSpan.Zero && heartbeat < poll ? heartbeat : poll;
                    if (events.Count > 0)
                    {
                        await writer.FlushAsync(token);
                        quietSince = time.GetTimestamp();
                        if (IsDone(last.Span))
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

                    var current = await store.GetAsync(stream.MessageId, token);
                    if (current is null || current.Incomplete)
                    {
                        // Expired, evicted, or lost a write: the store no longer holds the whole answer.
                        return (null, SidecarError.ResumeUnavailable);
                    }

                    if (next < current.EventCount)
                    {
                        // Appended between the read and this look: read again. Twice in a row with
                        // nothing to read means the events are gone (evicted) while the count stayed.
                        if (events.Count == 0 && missed)
                        {
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

                    if (time.GetUtcNow() > current.LeaseExpiresAt && await StoreProducerLostAsync(context, current, token))
                    {
                        // The producing replica stopped renewing its lease: it is gone. Its ending is now
                        // stored for every resumer; replay it like any other event.
                        continue;
                    }

                    if (follower is null)
                    {
                        // Caught up: follow from here on, and read once more for what came meanwhile.
                        follower = await store.FollowAsync(stream.MessageId, token);
                        continue;
                    }

                    if (heartbeat > TimeSpan.Zero && time.GetElapsedTime(quietSince) >= heartbeat)
                    {
                        writer.Write(SseBytes.KeepAlive);
                        await writer.FlushAsync(token);
                        metrics.HeartbeatSent();
                        quietSince = time.GetTimestamp();
                    }

                    await follower.WaitAsync(mark, wait, token);
                }
            }
        }
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

    /// <summary>Reads <c>Last-Event-ID</c> (or the <c>lastEventId</c> query parameter): resume after that event.</summary>
    private static bool TryReadLastEventId(HttpRequest request, out long from)
    {
        from = 0;
        var value = request.Headers["Last-Event-ID"].ToString();
        if (string.IsNullOrEmpty(value))
        {
            value = request.Query["lastEventId"].ToString();
        }

        if (string.IsNullOrEmpty(value))
        {
            return true;
        }

        if (value.Length > 19 || !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var last))
        {
            return false;
        }

        from = last + 1;
        return true;
    }
}
