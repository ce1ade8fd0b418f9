namespace Sidecar.Streams.Store;

/// <summary>Where a stored stream is in its life.</summary>
public enum StoredStreamState
{
    /// <summary>Its producer is still pumping it.</summary>
    Live,

    /// <summary>It ended normally (<c>finish</c>, a clean end): a resume answers 204.</summary>
    Completed,

    /// <summary>It ended abnormally; its stored events end with the terminal parts a resume replays.</summary>
    Failed,
}

/// <summary>What registers a new stream in the store.</summary>
/// <param name="MessageId">The assistant message id: the stream's key.</param>
/// <param name="SessionId">The chat session whose active stream it becomes.</param>
/// <param name="AgentId">The agent of the chat route.</param>
/// <param name="OwnerHash">A hash of the identity of the principal that started it (never a credential).</param>
/// <param name="ReplicaId">The sidecar replica producing it.</param>
/// <param name="LeaseExpiresAt">Until when the producer's lease holds unless renewed.</param>
/// <param name="TraceParent">The W3C <c>traceparent</c> of the stream's span, so that a resume can link to it.</param>
public sealed record StreamRegistration(string MessageId, string SessionId, string AgentId, string OwnerHash, string ReplicaId, DateTimeOffset LeaseExpiresAt, string? TraceParent = null);

/// <summary>A stored stream's metadata.</summary>
public sealed record StreamRecord(
    string MessageId,
    string SessionId,
    string AgentId,
    string OwnerHash,
    StoredStreamState State,
    long EventCount,
    string ReplicaId,
    DateTimeOffset LeaseExpiresAt,
    bool Incomplete,
    string? TraceParent = null);

/// <summary>One stored SSE event: its position in the stream (from 0) and its exact bytes.</summary>
public readonly record struct StoredEvent(long Sequence, ReadOnlyMemory<byte> Raw);

/// <summary>
/// What one producer writes for one stream in one batch, applied in this order: registration,
/// events, lease renewal, end. Any part may be absent.
/// </summary>
public sealed class StreamWrite(string messageId)
{
    public string MessageId { get; private set; } = messageId;

    /// <summary>Registers the stream and makes it its session's active stream.</summary>
    public StreamRegistration? Begin { get; set; }

    /// <summary>Events to append, contiguous, continuing the stream's sequence.</summary>
    public List<StoredEvent> Events { get; } = [];

    /// <summary>Extends the producer's lease to this time.</summary>
    public DateTimeOffset? RenewLeaseUntil { get; set; }

    /// <summary>The store no longer holds every event of the stream (a write was lost).</summary>
    public bool MarkIncomplete { get; set; }

    /// <summary>Ends the stream in this state; its keys then expire after the retention.</summary>
    public StoredStreamState? End { get; set; }

    /// <summary>Empties this write for another stream (the writer reuses its writes between batches).</summary>
    internal StreamWrite Reuse(string messageId)
    {
        MessageId = messageId;
        Begin = null;
        Events.Clear();
        RenewLeaseUntil = null;
        MarkIncomplete = false;
        End = null;
        return this;
    }
}

/// <summary>
/// The durable record of every stream's events, shared by all replicas: what resume replays and
/// follows. Implementations: Redis Streams (shared) and in-memory (one replica, the default).
/// </summary>
/// <remarks>
/// Writes come from one producer per stream, in order. Writes of many streams go in one call so
/// that a store that talks over the network pays one round trip per batch, not per event. Every
/// key an implementation writes expires: <see cref="StreamStoreOptions.Retention"/> after the
/// end, and at the latest the stream's maximum duration plus the retention after its start.
/// </remarks>
public interface IStreamStore
{
    /// <summary>Whether the store is reachable now (a new stream that starts while it is not cannot be resumed).</summary>
    bool IsAvailable { get; }

    /// <summary>Raised when the store becomes unreachable: streams being written lose resume.</summary>
    event Action? Unavailable;

    /// <summary>Raised when the store is reachable again after <see cref="Unavailable"/>.</summary>
    event Action? Available;

    /// <summary>Raised on every replica when a stop of a stream is requested (by its message id).</summary>
    event Action<string>? StopRequested;

    /// <summary>Asks whichever replica produces the stream to stop it: every replica hears the request.</summary>
    Task RequestStopAsync(string messageId, CancellationToken cancellationToken);

    /// <summary>Raised on every replica when a save acknowledgment for a message is published (message id, the ack's JSON).</summary>
    event Action<string, string>? AckPublished;

    /// <summary>Passes a save acknowledgment to every replica: the one holding the stream applies it.</summary>
    Task PublishAckAsync(string messageId, string ack, CancellationToken cancellationToken);

    /// <summary>
    /// Applies a batch of writes, each atomically; the result says, per write, whether it was
    /// applied. A write to a stream that is unknown or no longer live changes nothing.
    /// </summary>
    Task<bool[]> WriteAsync(IReadOnlyList<StreamWrite> writes, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a stream whose producer is gone, atomically and once: appends <paramref name="ending"/>
    /// and marks it failed, only while it is live, holds exactly <paramref name="eventCount"/>
    /// events and its lease has expired at <paramref name="now"/>. False when any of these fails
    /// (another resumer ended it first, or the producer wrote on).
    /// </summary>
    Task<bool> EndAbandonedAsync(string messageId, long eventCount, ReadOnlyMemory<byte> ending, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The session's active (latest) stream, or null.</summary>
    Task<StreamRecord?> FindActiveAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>The message id of the session's active (latest) stream, or null (its metadata may be gone).</summary>
    Task<string?> FindActiveIdAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>A stream's metadata, or null.</summary>
    Task<StreamRecord?> GetAsync(string messageId, CancellationToken cancellationToken);

    /// <summary>
    /// The stored events among the <paramref name="maxCount"/> positions from
    /// <paramref name="fromSequence"/> on, in order: fewer when the stream is shorter or the store
    /// lost some (the caller sees a gap by the positions), none when <paramref name="maxCount"/> is
    /// not positive.
    /// </summary>
    Task<IReadOnlyList<StoredEvent>> ReadAsync(string messageId, long fromSequence, int maxCount, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="ReadAsync"/>, only when the stream's owner is <paramref name="ownerHash"/>
    /// (else nothing), checked where the events are: a read sent before the caller's ownership is
    /// known costs nothing for a stranger.
    /// </summary>
    Task<IReadOnlyList<StoredEvent>> ReadIfOwnedAsync(string messageId, string ownerHash, long fromSequence, int maxCount, CancellationToken cancellationToken);

    /// <summary>
    /// Starts following a stream's changes (appends, state), until disposed: one subscription
    /// however often its owner waits.
    /// </summary>
    Task<IStreamFollower> FollowAsync(string messageId, CancellationToken cancellationToken);
}

/// <summary>Wakes a reader of a live stream when the stream changes.</summary>
/// <remarks>
/// Take a <see cref="Mark"/> before reading the store, then wait with it: a change between the
/// read and the wait ends the wait at once, so that none is missed.
/// </remarks>
public interface IStreamFollower : IAsyncDisposable
{
    /// <summary>How many changes were heard so far.</summary>
    long Mark { get; }

    /// <summary>
    /// Completes when a change was heard since <paramref name="mark"/> (at once if one already was),
    /// or when <paramref name="timeout"/> passes: callers re-read either way.
    /// </summary>
    Task WaitAsync(long mark, TimeSpan timeout, CancellationToken cancellationToken);
}
