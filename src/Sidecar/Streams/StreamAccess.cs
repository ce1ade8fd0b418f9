using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Errors;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>What a lookup of a session's stream, for its owner, found.</summary>
internal enum StreamAccessResult
{
    /// <summary>The caller's stream.</summary>
    Found,

    /// <summary>The store knows no stream of the session.</summary>
    NotFound,

    /// <summary>The session's stream belongs to someone else.</summary>
    Denied,

    /// <summary>The ids are not ids; answered with a typed 400.</summary>
    Invalid,

    /// <summary>The store (or the session tokens' signing keys) did not answer; answered with a typed 503.</summary>
    StoreFailed,

    /// <summary>The caller's session token does not verify against its issuer's keys: a stranger.</summary>
    TokenRefused,
}

/// <summary>
/// The checks that guard resume and stop alike: ids valid before they touch a key, the
/// session's stream looked up within the store's time box (once the store has answered this
/// replica's registration of the caller's newest stream, if it has not yet), and the caller its owner.
/// </summary>
internal sealed class StreamAccess(
    IStreamStore store,
    StoreWriter writer,
    ResumeTokenVerifier tokens,
    IOptionsMonitor<ResumeOptions> options,
    IOptions<StreamStoreOptions> storeOptions,
    TimeProvider time,
    ILogger<StreamAccess> logger)
{
    /// <summary>
    /// As <see cref="FindOwnedAsync(HttpContext, string, string, long?)"/> without a first read, for a
    /// stop: it goes on when its caller leaves (a user who pressed stop and closed the tab still
    /// stops the answer).
    /// </summary>
    public async Task<(StreamAccessResult Result, StreamRecord? Stream)> FindOwnedToStopAsync(HttpContext context, string agentId, string sessionId)
    {
        var (result, stream, _) = await FindOwnedAsync(context, agentId, sessionId, readFrom: null, CancellationToken.None);
        return (result, stream);
    }

    /// <summary>
    /// The session's stream, and whether the caller owns it (ended when the caller leaves); with
    /// <paramref name="readFrom"/>, also the stream's first events from there (<see cref="StoreReplay.FirstReadBatch"/> of them),
    /// read alongside its metadata, one store round trip fewer before a resume's first byte. They
    /// are given out only to the stream's owner (Found).
    /// </summary>
    public Task<(StreamAccessResult Result, StreamRecord? Stream, Task<IReadOnlyList<StoredEvent>>? Head)> FindOwnedAsync(HttpContext context, string agentId, string sessionId, long? readFrom) =>
        FindOwnedAsync(context, agentId, sessionId, readFrom, context.RequestAborted);

    private async Task<(StreamAccessResult Result, StreamRecord? Stream, Task<IReadOnlyList<StoredEvent>>? Head)> FindOwnedAsync(HttpContext context, string agentId, string sessionId, long? readFrom, CancellationToken aborted)
    {
        if (!StreamIds.IsValid(agentId) || !StreamIds.IsValid(sessionId))
        {
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.InvalidId, time, context.TraceIdentifier));
            return (StreamAccessResult.Invalid, null, null);
        }

        // A token that does not verify never reaches the store.
        if (tokens.Enabled && OwnerIdentity.Jwt(context.Request) is { } token)
        {
            switch (await tokens.CheckAsync(token, context.RequestAborted))
            {
                case TokenCheck.Refused:
                    return (StreamAccessResult.TokenRefused, null, null);
                case TokenCheck.KeysUnavailable:
                    await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, sessionId));
                    return (StreamAccessResult.StoreFailed, null, null);
            }
        }

        var caller = OwnerIdentity.Hash(context.Request, sessionId, options.CurrentValue.OwnerHashKey);
        if (writer.Registering(sessionId) is { } registering && string.Equals(registering.OwnerHash, caller, StringComparison.Ordinal))
        {
            // This replica has not yet had the store's answer to the registration of the caller's
            // newest stream in this session (a few milliseconds after its start; longer when the
            // store is slow): looked up now, the store would give the session's previous stream, or
            // none. Only for its owner (anyone else learns nothing from the time taken); bounded.
            await registering.WaitRegistrationWrittenAsync(registering.SettleLimit, aborted);
        }

        StreamRecord? stream = null;
        Task<IReadOnlyList<StoredEvent>>? head = null;
        try
        {
            using var timeout = new CancellationTokenSource(storeOptions.Value.OperationTimeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, aborted);
            if (await store.FindActiveIdAsync(sessionId, linked.Token) is { } messageId)
            {
                // Sent right behind the metadata read, so that both take one round trip; bounded by
                // the store's own timeout. It reads only for the stream's owner: a stranger's
                // request makes the store read nothing.
                var metadata = store.GetAsync(messageId, linked.Token);
                head = readFrom is { } from ? store.ReadIfOwnedAsync(messageId, caller, from, StoreReplay.FirstReadBatch, aborted) : null;
                stream = await metadata;
            }
        }
        catch (Exception ex) when (!aborted.IsCancellationRequested)
        {
            Discard(head);
            Log.ResumeStoreFailed(logger, sessionId, ex.GetType().Name);
            await ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeUnavailable, time, context.TraceIdentifier, sessionId));
            return (StreamAccessResult.StoreFailed, null, null);
        }
        catch
        {
            // The client left.
            Discard(head);
            throw;
        }

        if (stream is null || !string.Equals(stream.AgentId, agentId, StringComparison.Ordinal))
        {
            // Another agent's path is not this stream's: the upstream answers it as it always has.
            Discard(head);
            return (StreamAccessResult.NotFound, null, null);
        }

        if (!string.Equals(stream.OwnerHash, caller, StringComparison.Ordinal))
        {
            Discard(head);
            return (StreamAccessResult.Denied, stream, null);
        }

        return (StreamAccessResult.Found, stream, head);
    }

    /// <summary>A read whose result is not used: its failure is observed, not left unobserved.</summary>
    internal static void Discard(Task? read) =>
        read?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <summary>Answers a caller who is not the owner: as "no stream" (204), or 403/404 when configured.</summary>
    public Task DenyAsync(HttpContext context, string sessionId)
    {
        switch (options.CurrentValue.DeniedStatus)
        {
            case 403:
                return ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeForbidden, time, context.TraceIdentifier, sessionId));
            case 404:
                return ErrorResponses.WriteAsync(context, SidecarErrors.Create(SidecarError.ResumeNotFound, time, context.TraceIdentifier, sessionId));
            default:
                NoContent(context);
                return Task.CompletedTask;
        }
    }

    public static void NoContent(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status204NoContent;
        context.Response.Headers.CacheControl = "no-cache";
    }
}
