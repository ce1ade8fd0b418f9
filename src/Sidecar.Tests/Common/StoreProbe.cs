using Sidecar.Streams.Store;

namespace Sidecar.Tests.Common;

/// <summary>
/// Waits on a sidecar's store, which is written in the background: for a session's stream to
/// hold some events, or to have ended. Signal-based (the store's change notifications), bounded.
/// </summary>
internal static class StoreProbe
{
    public static Task WaitForEventsAsync(IStreamStore store, string session, long count) =>
        WaitAsync(store, session, stream => stream.EventCount >= count).DefaultTimeout();

    public static Task WaitForEndAsync(IStreamStore store, string session) =>
        WaitAsync(store, session, stream => stream.State != StoredStreamState.Live).DefaultTimeout();

    private static async Task WaitAsync(IStreamStore store, string session, Func<StreamRecord, bool> done)
    {
        IStreamFollower? follower = null;
        try
        {
            while (true)
            {
                var mark = follower?.Mark ?? 0;
                var stream = await store.FindActiveAsync(session, CancellationToken.None);
                if (stream is not null && done(stream))
                {
                    return;
                }

                if (stream is { Incomplete: true })
                {
                    throw new InvalidOperationException($"The stream of session {session} lost resume (a store write failed or timed out) at {stream.EventCount} events.");
                }

                if (stream is null)
                {
                    // Not registered yet: its registration is in the writer's next batch.
                    await Task.Yield();
                }
                else if (follower is null)
                {
                    // Follow it, then look again: a change in between is not missed.
                    follower = await store.FollowAsync(stream.MessageId, CancellationToken.None);
                }
                else
                {
                    await follower.WaitAsync(mark, TimeSpan.FromSeconds(1), CancellationToken.None);
                }
            }
        }
        finally
        {
            if (follower is not null)
            {
                await follower.DisposeAsync();
            }
        }
    }
}
