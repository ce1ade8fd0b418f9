using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Errors;
using Sidecar.Hosting;
using Sidecar.Streams;
using Sidecar.Telemetry;

namespace Sidecar.Persistence;

/// <summary>
/// <c>POST /sidecar/v1/acks/{messageId}</c> on the management port: the service says whether it
/// saved an answer. Authenticated by <see cref="PersistenceOptions.CallbackToken"/>; any replica
/// may receive it; duplicates are harmless; an ack for a message nobody knows is 404.
/// </summary>
internal static class AckEndpoint
{
    public const string Path = "/sidecar/v1/acks/{messageId}";

    // An ack is a status and a short error text.
    private const int MaxBodyBytes = 4096;

    public static IEndpointRouteBuilder MapAckEndpoint(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost(Path, AcceptAsync).RequireManagementPort();
        return endpoints;
    }

    private static async Task AcceptAsync(
        HttpContext context,
        string messageId,
        PersistenceAcks acks,
        IOptionsMonitor<PersistenceOptions> options,
        TimeProvider time,
        SidecarMetrics metrics,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger(typeof(AckEndpoint).FullName!);
        if (!Authorized(context.Request, options.CurrentValue.CallbackToken))
        {
            metrics.AckCallback("unauthorized");
            Log.AckRejected(logger, "unauthorized");
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.AckUnauthorized, time, context.TraceIdentifier),
                response => response.Headers.WWWAuthenticate = "Bearer");
            return;
        }

        if (!StreamIds.IsValid(messageId))
        {
            await InvalidAsync("invalid_id");
            return;
        }

        var body = await ReadBodyAsync(context.Request, context.RequestAborted);
        if (body is null || PersistenceAck.Parse(body, "callback", out var bodyMessageId) is not { } ack
            || (bodyMessageId is not null && bodyMessageId != messageId))
        {
            await InvalidAsync("invalid_body");
            return;
        }

        AckDelivery delivery;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            delivery = await acks.DeliverAsync(messageId, ack, timeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or StackExchange.Redis.RedisException or TimeoutException)
        {
            metrics.AckCallback("failed");
            Log.AckRejected(logger, "store_unavailable");
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.AckStoreUnavailable, time, context.TraceIdentifier, messageId: messageId));
            return;
        }

        metrics.AckCallback(delivery switch
        {
            AckDelivery.Delivered => "delivered",
            AckDelivery.Forwarded => "forwarded",
            _ => "unknown",
        });
        if (delivery == AckDelivery.Unknown)
        {
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.AckUnknownMessage, time, context.TraceIdentifier, messageId: messageId));
            return;
        }

        Log.AckAccepted(logger, messageId, ack.Status == AckStatus.Saved ? "saved" : "failed", delivery == AckDelivery.Delivered ? "here" : "to every replica");
        context.Response.StatusCode = StatusCodes.Status202Accepted;

        async Task InvalidAsync(string reason)
        {
            metrics.AckCallback("invalid");
            Log.AckRejected(logger, reason);
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.AckInvalid, time, context.TraceIdentifier, messageId: StreamIds.IsValid(messageId) ? messageId : null));
        }
    }

    /// <summary>A bearer token equal to the configured one, compared in constant time; never when none is configured.</summary>
    private static bool Authorized(HttpRequest request, string? token)
    {
        var header = request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(token) || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        var given = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        return CryptographicOperations.FixedTimeEquals(expected, given);
    }

    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBodyBytes)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > MaxBodyBytes)
            {
                return null;
            }
        }

        return buffer.ToArray();
    }
}
