namespace Sidecar.Quota;

/// <summary>
/// The durable list of settlements still to make, shared by every replica. Each item is claimed
/// atomically with a lease: one replica works it at a time, and a claim held by a replica that
/// died lapses and is taken over.
/// </summary>
public interface IQuotaOutbox
{
    /// <summary>Adds an item, unless one with its <see cref="QuotaItem.Key"/> is there (the first one stands). True when added.</summary>
    Task<bool> EnqueueAsync(QuotaItem item, CancellationToken cancellationToken);

    /// <summary>Claims up to <paramref name="max"/> items due at <paramref name="now"/> (unclaimed, or whose claim lapsed) until <paramref name="leaseUntil"/>.</summary>
    Task<IReadOnlyList<QuotaItem>> ClaimAsync(string replicaId, DateTimeOffset now, DateTimeOffset leaseUntil, int max, CancellationToken cancellationToken);

    /// <summary>Removes a done item (by <see cref="QuotaItem.Key"/>), if this replica still holds its claim.</summary>
    Task<bool> CompleteAsync(string key, string replicaId, CancellationToken cancellationToken);

    /// <summary>Puts a claimed item back, due at <paramref name="dueAt"/>, with its new state (attempts).</summary>
    Task<bool> RescheduleAsync(QuotaItem item, string replicaId, DateTimeOffset dueAt, CancellationToken cancellationToken);

    /// <summary>Whether an item with this key (a reservation's message id, for a settlement) is waiting.</summary>
    Task<bool> ContainsAsync(string key, CancellationToken cancellationToken);

    /// <summary>How many items wait, and when the oldest was enqueued (null when empty).</summary>
    Task<(long Depth, DateTimeOffset? Oldest)> StatsAsync(CancellationToken cancellationToken);
}
