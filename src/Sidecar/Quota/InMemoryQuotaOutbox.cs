namespace Sidecar.Quota;

/// <summary>
/// The outbox in this process's memory: the embedded default for one replica. Not durable: a
/// restart loses what is waiting (the sweep then finds the reservations left in <c>reserved</c>).
/// </summary>
internal sealed class InMemoryQuotaOutbox : IQuotaOutbox
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _items = new(StringComparer.Ordinal);

    public Task<bool> EnqueueAsync(QuotaItem item, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_items.TryAdd(item.Key, new Entry(item, DateTimeOffset.FromUnixTimeMilliseconds(item.EnqueuedAtMs))));
        }
    }

    public Task<IReadOnlyList<QuotaItem>> ClaimAsync(string replicaId, DateTimeOffset now, DateTimeOffset leaseUntil, int max, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var due = _items.Values.Where(e => e.DueAt <= now).OrderBy(e => e.DueAt).Take(max).ToList();
            foreach (var entry in due)
            {
                entry.DueAt = leaseUntil;
                entry.ClaimedBy = replicaId;
            }

            return Task.FromResult<IReadOnlyList<QuotaItem>>(due.Select(e => e.Item).ToList());
        }
    }

    public Task<bool> CompleteAsync(string key, string replicaId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_items.TryGetValue(key, out var entry) && entry.ClaimedBy == replicaId && _items.Remove(key));
        }
    }

    public Task<bool> RescheduleAsync(QuotaItem item, string replicaId, DateTimeOffset dueAt, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_items.TryGetValue(item.Key, out var entry) || entry.ClaimedBy != replicaId)
            {
                return Task.FromResult(false);
            }

            entry.Item = item;
            entry.DueAt = dueAt;
            entry.ClaimedBy = null;
            return Task.FromResult(true);
        }
    }

    public Task<bool> ContainsAsync(string key, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_items.ContainsKey(key));
        }
    }

    public Task<(long Depth, DateTimeOffset? Oldest)> StatsAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult<(long, DateTimeOffset?)>((_items.Count, _items.Count == 0 ? null : _items.Values.Min(e => e.EnqueuedAt)));
        }
    }

    private sealed class Entry(QuotaItem item, DateTimeOffset enqueuedAt)
    {
        public QuotaItem Item { get; set; } = item;

        public DateTimeOffset EnqueuedAt { get; } = enqueuedAt;

        public DateTimeOffset DueAt { get; set; } = enqueuedAt;

        public string? ClaimedBy { get; set; }
    }
}
