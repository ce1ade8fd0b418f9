using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Errors;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// DELETE on the chat route: "stop generating". The replica producing the session's active stream
/// (any replica: the request goes through the store) cancels its upstream and ends every
/// subscriber with <c>abort</c> and <c>[DONE]</c>. 204 whether or not there was anything to stop,
/// so that a stop reveals nothing.
/// </summary>
internal sealed class StopEndpoint(
    IStreamStore store,
    StreamAccess access,
    IOptions<StreamStoreOptions> storeOptions,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<StopEndpoint> logger)
{
    public async Task ServeAsync(HttpContext context, string agentId, string sessionId)
    {
        var (result, stream) = await access.FindOwnedToStopAsync(context, agentId, sessionId);
        switch (result)
        {
            case StreamAccessResult.Invalid or StreamAccessResult.StoreFailed:
                Done(sessionId, result == StreamAccessResult.Invalid ? "invalid" : "failed");
                return;
            case StreamAccessResult.Denied or StreamAccessResult.TokenRefused:
                Done(sessionId, result == StreamAccessResult.Denied ? "denied" : "token_refused");
                await access.DenyAsync(context, sessionId);
                return;
            case StreamAccessResult.NotFound:
                Done(sessionId, "no_stream");
                StreamAccess.NoContent(context);
                return;
        }

        if (stream!.State != StoredStreamState.Live)
        {
            Done(sessionId, "no_stream");
            StreamAccess.NoContent(context);
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(storeOptions.Value.OperationTimeout, time);
            await store.RequestStopAsync(stream.MessageId, timeout.Token);
        }
        catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
        {
            Log.ResumeStoreFailed(logger, sessionId, ex.GetType().Name);
            Done(sessionId, "failed");
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, sessionId));
            return;
        }

        Done(sessionId, "stopped");
        StreamAccess.NoContent(context);
    }

    private void Done(string sessionId, string result)
    {
        metrics.Stop(result);
        Log.StopResult(logger, sessionId, result);
    }
}
