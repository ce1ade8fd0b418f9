using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Configuration;
using Sidecar.Errors;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Proxy;

/// <summary>
/// Runs in YARP's proxy pipeline. A chat GET (resume) is answered by <see cref="ResumeEndpoint"/>.
/// On a chat POST it enforces the request body limit, keeps a
/// client that leaves from cancelling the upstream request, marks the request so that
/// <see cref="ChatStreamTransform"/> takes the upstream's event stream away from YARP, and, once
/// YARP has forwarded the request and copied the headers, serves the client from the stream's pump.
/// </summary>
internal sealed class ChatStreamMiddleware(
    RequestDelegate next,
    IOptionsMonitor<SidecarOptions> options,
    LiveClient liveClient,
    ResumeEndpoint resume,
    StopEndpoint stop,
    StreamPumps pumps,
    IStreamStore store,
    IOptionsMonitor<ResumeOptions> resumeOptions,
    IOptions<StreamStoreOptions> storeOptions,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<ChatStreamMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var isPost = HttpMethods.IsPost(request.Method);
        var isDelete = HttpMethods.IsDelete(request.Method);
        if ((!isPost && !isDelete && !HttpMethods.IsGet(request.Method)) || !ChatRoute.TryMatch(request.Path, out var agentId, out var sessionId))
        {
            await next(context);
            return;
        }

        if (!isPost && !storeOptions.Value.Enabled)
        {
            // No store: resume and stop are the upstream's, as without the sidecar.
            await next(context);
            return;
        }

        if (isDelete)
        {
            // Stop generating: the sidecar's, since only it holds the upstream after a disconnect.
            await stop.ServeAsync(context, agentId, sessionId);
            return;
        }

        if (!isPost)
        {
            // Resume is the sidecar's: it is served from the store, on any replica. A session
            // the store does not know is the upstream's to answer.
            if (!await resume.ServeAsync(context, agentId, sessionId))
            {
                await next(context);
            }

            return;
        }

        if (pumps.IsStopping)
        {
            // Draining: an answer started now would be cut at the deadline. The client retries elsewhere.
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.Draining, time, context.TraceIdentifier, sessionId), response =>
            {
                response.Headers.Connection = "close";
                response.Headers.RetryAfter = "1";
            });
            return;
        }

        var limit = options.CurrentValue.MaxChatRequestBodyBytes;
        if (request.ContentLength > limit)
        {
            Log.RequestBodyTooLarge(logger, limit);
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.RequestTooLarge, time, context.TraceIdentifier, sessionId));
            return;
        }

        if (resumeOptions.CurrentValue.UnavailableSignal == ResumeUnavailableSignal.FailFast && !store.IsAvailable)
        {
            // Configured to refuse answers that could not be resumed, before the upstream reserves quota.
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, sessionId));
            return;
        }

        // A chunked body is cut off by Kestrel at the limit; UpstreamErrorMiddleware answers 413.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeLimit)
        {
            sizeLimit.MaxRequestBodySize = limit;
        }

        var exchange = new ChatExchange(agentId, sessionId, context.TraceIdentifier, OwnerIdentity.Hash(request, sessionId, resumeOptions.CurrentValue.OwnerHashKey), OwnerIdentity.IsSignedIn(request));
        context.Features.Set(exchange);
        await ForwardDetachedFromClientAsync(context, exchange);

        if (exchange.Pump is { } pump)
        {
            await liveClient.ServeAsync(context, pump);
        }
    }

    /// <summary>
    /// Forwards with a token the client cannot cancel: YARP cancels the upstream request when
    /// <see cref="HttpContext.RequestAborted"/> fires, and a tab closed while the upstream is still
    /// checking guards or reserving quota must not stop the answer. An incomplete request body
    /// still fails the request, and YARP's ActivityTimeout still bounds the wait for headers.
    /// </summary>
    private async Task ForwardDetachedFromClientAsync(HttpContext context, ChatExchange exchange)
    {
        var clientAborted = context.RequestAborted;
        using var onClientLeft = clientAborted.Register(() =>
        {
            metrics.ClientDisconnected("before_headers");
            Log.ClientLeftBeforeHeaders(logger, exchange.SessionId);
        });
        context.RequestAborted = CancellationToken.None;
        try
        {
            await next(context);
        }
        finally
        {
            context.RequestAborted = clientAborted;
        }
    }
}
