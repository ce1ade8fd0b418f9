using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Sidecar.Errors;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// GET on the chat route: resumes the session's active stream from the store, on any replica.
/// Replays everything stored from the first event (or after <c>Last-Event-ID</c>), follows the
/// stream live until it ends, then <c>[DONE]</c>. 204 when there is nothing to resume.
/// </summary>
internal sealed class ResumeEndpoint(
    StreamAccess access,
    StoreReplay replay,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<ResumeEndpoint> logger)
{
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

        var (result, stream, head) = await access.FindOwnedAsync(context, agentId, sessionId, readFrom: from);
        switch (result)
        {
            case StreamAccessResult.Invalid or StreamAccessResult.StoreFailed:
                Done(sessionId, result == StreamAccessResult.Invalid ? "invalid" : "failed");
                return true;
            case StreamAccessResult.NotFound:
                metrics.Resume("not_found");
                return false;
            case StreamAccessResult.Denied or StreamAccessResult.TokenRefused:
                Done(sessionId, result == StreamAccessResult.Denied ? "denied" : "token_refused");
                await access.DenyAsync(context, sessionId);
                return true;
        }

        try
        {
            await AnswerAsync(context, sessionId, stream!, from, head);
            return true;
        }
        finally
        {
            // The first events' read, when it was not used (no replay, or the client left first).
            StreamAccess.Discard(head);
        }
    }

    /// <summary>Answers the stream's owner: no content for a finished stream, "resume unavailable" for an incomplete one, else the replay.</summary>
    private async Task AnswerAsync(HttpContext context, string sessionId, StreamRecord stream, long from, Task<IReadOnlyList<StoredEvent>>? head)
    {
        if (stream.State == StoredStreamState.Completed || (!stream.Incomplete && stream.State != StoredStreamState.Live && from >= stream.EventCount))
        {
            // Finished, or ended whole and the client has every event already (its ending
            // included): a replay would have nothing to send but an ending of its own invention.
            // An incomplete copy counts fewer events than its client may have had: said below.
            Done(sessionId, "no_stream");
            StreamAccess.NoContent(context);
            return;
        }

        if (stream.Incomplete)
        {
            Done(sessionId, "failed");
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, sessionId));
            return;
        }

        Done(sessionId, "replayed");
        // A span for the replay, linked to the span of the stream it follows (on whichever replica).
        var links = stream.TraceParent is { } parent && System.Diagnostics.ActivityContext.TryParse(parent, null, out var linked)
            ? new[] { new System.Diagnostics.ActivityLink(linked) }
            : null;
        using var activity = SidecarActivity.Source.StartActivity("chat.resume", System.Diagnostics.ActivityKind.Internal, parentContext: default, links: links);
        activity?.SetTag("chat.session_id", sessionId);
        activity?.SetTag("chat.message_id", stream.MessageId);
        await ReplayAsync(context, stream, from, head);
    }

    private void Done(string sessionId, string result)
    {
        metrics.Resume(result);
        Log.ResumeResult(logger, sessionId, result);
    }

    private async Task ReplayAsync(HttpContext context, StreamRecord stream, long from, Task<IReadOnlyList<StoredEvent>>? head)
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
        switch (await replay.CopyAsync(context, stream.SessionId, stream.MessageId, from, head))
        {
            case ReplayResult.Interrupted:
                metrics.Resume("interrupted");
                break;
            case ReplayResult.StoreFailed:
                metrics.Resume("failed");
                break;
        }
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

        if (value.Length > 19 || !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var last) || last == long.MaxValue)
        {
            // The next position must exist: long.MaxValue + 1 would wrap to a negative one.
            return false;
        }

        from = last + 1;
        return true;
    }
}
