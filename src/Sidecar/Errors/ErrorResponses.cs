using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Sidecar.Errors;

/// <summary>Writes typed JSON error responses.</summary>
internal static class ErrorResponses
{
    /// <summary>Replaces whatever the response holds (it must not have started) with <paramref name="body"/>.</summary>
    public static Task WriteAsync(HttpContext context, ErrorBody body)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = body.StatusCode;
        response.ContentType = "application/json";
        response.Headers.CacheControl = "no-store";
        response.Headers["x-request-id"] = body.Metadata.RequestId;
        if (body.Metadata.SessionId is { } sessionId)
        {
            response.Headers["x-session-id"] = sessionId;
        }

        return JsonSerializer.SerializeAsync(response.Body, body, ErrorJsonContext.Relaxed.ErrorBody, context.RequestAborted);
    }
}
