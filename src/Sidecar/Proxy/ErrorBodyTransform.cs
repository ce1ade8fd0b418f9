using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Errors;
using Sidecar.Telemetry;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Sidecar.Proxy;

/// <summary>
/// A response transform that normalises the chat route's non-2xx bodies (<see cref="ErrorNormalizer"/>):
/// the status stays, fields already there stay, what the client needs to classify the error is added.
/// Bodies over the size limit, compressed bodies and bodies already complete pass through unchanged.
/// </summary>
internal sealed class ErrorBodyTransform(
    IOptionsMonitor<ErrorNormalizationOptions> options,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<ErrorBodyTransform> logger) : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context)
    {
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context) => context.AddResponseTransform(NormalizeAsync);

    private async ValueTask NormalizeAsync(ResponseTransformContext context)
    {
        var current = options.CurrentValue;
        if (!current.Normalize
            || context.ProxyResponse is not { } upstream
            || (int)upstream.StatusCode is < 400 or > 599
            || !context.HttpContext.Request.Path.StartsWithSegments("/api/v", StringComparison.Ordinal)
            || HasContentEncoding(upstream.Content.Headers.ContentEncoding))
        {
            return;
        }

        var status = (int)upstream.StatusCode;
        var stream = await upstream.Content.ReadAsStreamAsync(context.CancellationToken);
        var buffer = new byte[current.MaxBodyBytes + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), context.CancellationToken)) > 0)
        {
            length += read;
        }

        var response = context.HttpContext.Response;
        context.SuppressResponseBody = true;
        if (length > current.MaxBodyBytes)
        {
            // Too large to parse: passed on as it came.
            metrics.ErrorBodyNormalized("too_large");
            await response.Body.WriteAsync(buffer.AsMemory(0, length), context.CancellationToken);
            await stream.CopyToAsync(response.Body, context.CancellationToken);
            return;
        }

        var requestId = upstream.Headers.TryGetValues("x-request-id", out var ids) ? ids.FirstOrDefault() : context.HttpContext.TraceIdentifier;
        var sessionId = ChatRoute.TryMatch(context.HttpContext.Request.Path, out _, out var session) ? session : null;
        var normalized = ErrorNormalizer.Normalize(status, buffer.AsSpan(0, length), current, requestId, sessionId, SidecarErrors.Timestamp(time));
        if (normalized is null)
        {
            metrics.ErrorBodyNormalized("complete");
            await response.Body.WriteAsync(buffer.AsMemory(0, length), context.CancellationToken);
            return;
        }

        metrics.ErrorBodyNormalized("normalized");
        Log.ErrorBodyNormalized(logger, status, length);
        response.ContentType = "application/json";
        response.ContentLength = normalized.Length;
        await response.Body.WriteAsync(normalized, context.CancellationToken);
    }

    private static bool HasContentEncoding(ICollection<string> encodings) =>
        encodings.Any(e => !string.Equals(e, "identity", StringComparison.OrdinalIgnoreCase) && !string.Equals(e, "none", StringComparison.OrdinalIgnoreCase));
}
