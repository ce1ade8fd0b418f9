using System.Net;
using Sidecar.Streams;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Sidecar.Proxy;

/// <summary>
/// A response transform on every route that, for chat-route requests answered with an event
/// stream, takes the body away from YARP and hands it to a <see cref="StreamPump"/>.
/// </summary>
/// <remarks>
/// YARP disposes the upstream response (and the content it holds) when the body is suppressed, so
/// the content is detached first. YARP has already copied the headers; Content-Length is removed
/// because the sidecar may add bytes (heartbeats) and Kestrel re-chunks the body.
/// </remarks>
internal sealed class ChatStreamTransform(StreamPumps pumps, Microsoft.Extensions.Options.IOptionsMonitor<Quota.QuotaOptions> quota) : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context)
    {
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context) => context.AddResponseTransform(TakeOverEventStreamAsync);

    private async ValueTask TakeOverEventStreamAsync(ResponseTransformContext context)
    {
        if (context.ProxyResponse is not { StatusCode: HttpStatusCode.OK } upstream
            || context.HttpContext.Features.Get<ChatExchange>() is not { } exchange
            || !IsEventStream(upstream.Content.Headers.ContentType?.MediaType))
        {
            return;
        }

        var content = upstream.Content;
        var body = await content.ReadAsStreamAsync(context.CancellationToken);
        var messageId = upstream.Headers.TryGetValues("x-message-id", out var values) ? values.FirstOrDefault() : null;
        var quotaOptions = quota.CurrentValue;
        if (!string.IsNullOrWhiteSpace(quotaOptions.BaseUrl) && (exchange.SignedIn || !quotaOptions.SignedInOnly)
            && upstream.Headers.TryGetValues(quotaOptions.ReservationHeader, out var reservations)
            && reservations.FirstOrDefault() is { } reservation && StreamIds.IsValid(reservation))
        {
            // The answer holds a quota reservation: it is settled when the stream ends.
            exchange.ReservationId = reservation;
        }

        try
        {
            exchange.Pump = pumps.Start(exchange, body, content, messageId);
        }
        catch
        {
            // Still attached: YARP disposes the content, and the connection with it.
            await body.DisposeAsync();
            throw;
        }

        upstream.Content = new ByteArrayContent([]);
        context.SuppressResponseBody = true;
        context.HttpContext.Response.Headers.ContentLength = null;
    }

    private static bool IsEventStream(string? mediaType) =>
        string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);
}
