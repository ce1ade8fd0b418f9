using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sidecar.Errors;
using Sidecar.Streams;
using Sidecar.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace Sidecar.Proxy;

/// <summary>
/// Replaces YARP's empty 502/503/504 answers (upstream refused, unreachable, timed out) and its
/// empty answer to an oversized chunked body with the contract's typed JSON errors.
/// </summary>
internal sealed class UpstreamErrorMiddleware(
    RequestDelegate next,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<UpstreamErrorMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        await next(context);

        if (context.Features.Get<IForwarderErrorFeature>() is not { } failure || context.Response.HasStarted)
        {
            return;
        }

        SidecarError? error = failure.Error switch
        {
            ForwarderError.RequestTimedOut => SidecarError.UpstreamTimeout,
            ForwarderError.Request or ForwarderError.NoAvailableDestinations or ForwarderError.ResponseHeaders
                or ForwarderError.RequestBodyDestination => SidecarError.UpstreamUnavailable,
            ForwarderError.RequestBodyClient when IsBodyTooLarge(failure.Exception) => SidecarError.RequestTooLarge,
            ForwarderError.RequestBodyClient => SidecarError.BadRequestBody,
            // The client went away: nobody to answer.
            _ => null,
        };

        if (error is not { } value || context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        var sessionId = context.Features.Get<ChatExchange>()?.SessionId;
        var body = SidecarErrors.Create(value, time, context.TraceIdentifier, sessionId);
        metrics.UpstreamError(body.ErrorCode!.ToLowerInvariant());
        Log.UpstreamFailedBeforeHeaders(logger, body.ErrorCode!, failure.Error.ToString(), failure.Exception?.GetType().Name, body.StatusCode);
        await ErrorResponses.WriteAsync(context, body);
    }

    /// <summary>Kestrel's "request body too large", however deep YARP's copy wrapped it.</summary>
    private static bool IsBodyTooLarge(Exception? exception) => exception switch
    {
        null => false,
        BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => true,
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsBodyTooLarge),
        _ => IsBodyTooLarge(exception.InnerException),
    };
}
