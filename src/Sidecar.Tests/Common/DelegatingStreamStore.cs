using Sidecar.Streams.Store;

namespace Sidecar.Tests.Common;

/// <summary>A store that passes every call to another: a test overrides the calls it holds or fails.</summary>
internal class DelegatingStreamStore(IStreamStore inner) : IStreamStore
{
    public virtual bool IsAvailable => inner.IsAvailable;

    public event Action? Unavailable { add => inner.Unavailable += value; remove => inner.Unavailable -= value; }

    public event Action? Available { add => inner.Available += value; remove => inner.Available -= value; }

    public event Action<string>? StopRequested { add => inner.StopRequested += value; remove => inner.StopRequested -= value; }

    public event Action<string, string>? AckPublished { add => inner.AckPublished += value; remove => inner.AckPublished -= value; }

    public virtual Task<bool[]> WriteAsync(IReadOnlyList<StreamWrite> writes, CancellationToken cancellationToken) => inner.WriteAsync(writes, cancellationToken);

    public virtual Task RequestStopAsync(string messageId, CancellationToken cancellationToken) => inner.RequestStopAsync(messageId, cancellationToken);

    public virtual Task PublishAckAsync(string messageId, string ack, CancellationToken cancellationToken) => inner.PublishAckAsync(messageId, ack, cancellationToken);

    public virtual Task<bool> EndAbandonedAsync(string messageId, long eventCount, ReadOnlyMemory<byte> ending, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.EndAbandonedAsync(messageId, eventCount, ending, now, cancellationToken);

    public virtual Task<StreamRecord?> FindActiveAsync(string sessionId, CancellationToken cancellationToken) => inner.FindActiveAsync(sessionId, cancellationToken);

    public virtual Task<string?> FindActiveIdAsync(string sessionId, CancellationToken cancellationToken) => inner.FindActiveIdAsync(sessionId, cancellationToken);

    public virtual Task<StreamRecord?> GetAsync(string messageId, CancellationToken cancellationToken) => inner.GetAsync(messageId, cancellationToken);

    public virtual Task<IReadOnlyList<StoredEvent>> ReadAsync(string messageId, long fromSequence, int maxCount, CancellationToken cancellationToken) =>
        inner.ReadAsync(messageId, fromSequence, maxCount, cancellationToken);

    public virtual Task<IReadOnlyList<StoredEvent>> ReadIfOwnedAsync(string messageId, string ownerHash, long fromSequence, int maxCount, CancellationToken cancellationToken) =>
        inner.ReadIfOwnedAsync(messageId, ownerHash, fromSequence, maxCount, cancellationToken);

    public virtual Task<IStreamFollower> FollowAsync(string messageId, CancellationToken cancellationToken) => inner.FollowAsync(messageId, cancellationToken);
}
