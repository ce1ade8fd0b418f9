using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Configuration;
using Sidecar.Errors;
using Sidecar.Streams;
using Sidecar.Telemetry;

namespace Sidecar.Proxy;

/// <summary>
/// Runs in YARP's proxy pipeline. On the chat route it enforces the request body limit, marks the
/// request so that <see cref="ChatStreamTransform"/> takes the upstream's event stream away from
/// YARP, and, once YARP has forwarded the request and copied the headers, serves the client from
/// the stream's pump.
/// </summary>
internal sealed class ChatStreamMiddleware(
    RequestDelegate next,
    IOptionsMonitor<SidecarOptions> options,
    LiveClient liveClient,
    TimeProvider time,
    ILogger<ChatStreamMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var isPost = HttpMethods.IsPost(request.Method);
        if ((!isPost && !HttpMethods.IsGet(request.Method))
            || !ChatRoute.TryMatch(request.Path, out var agentId, out var sessionId))
        {
            await next(context);
            return;
        }

        if (isPost)
        {
            var limit = options.CurrentValue.MaxChatRequestBodyBytes;
            if (request.ContentLength > limit)
            {
                Log.RequestBodyTooLarge(logger, limit);
                await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.RequestTooLarge, time, context.TraceIdentifier, sessionId));
                return;
            }

            // A chunked body is cut off by Kestrel at the limit; UpstreamErrorMiddleware answers 413.
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeLimit)
            {
                sizeLimit.MaxRequestBodySize = limit;
            }
        }

        var exchange = new ChatExchange(agentId, sessionId, isPost ? ChatRequestKind.Answer : ChatRequestKind.Resume, context.TraceIdentifier);
        context.Features.Set(exchange);
        await next(context);

        if (exchange.Pump is { } pump)
        {
            await liveClient.ServeAsync(context, pump);
        }
    }
}
