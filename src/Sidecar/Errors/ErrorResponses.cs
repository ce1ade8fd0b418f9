using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Sidecar.Errors;

/// <summary>Writes typed JSON error responses.</summary>
internal static class ErrorResponses
{
    /// <summary>Replaces whatever the response holds (it must not have started) with <paramref name="body"/>.</summary>
    /// <param name="context">The request, whose response has not started.</param>
    /// <param name="body">The error.</param>
    /// <param name="headers">More headers for this answer (set after the response is cleared).</param>
    public static Task WriteAsync(HttpContext context, ErrorBody body, Action<HttpResponse>? headers = null)
    {
        var response = context.Response;
        response.Clear();
        headers?.Invoke(response);
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
