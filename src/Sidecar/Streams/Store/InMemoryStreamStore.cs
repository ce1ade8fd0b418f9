using Microsoft.Extensions.Options;

namespace Sidecar.Streams.Store;

/// <summary>
/// The embedded store: streams in this process's memory, for one replica and for the demo.
/// Bounded: finished streams are evicted after the retention, and oldest first when the total
/// size passes <see cref="StreamStoreOptions.InMemoryMaxBytes"/>; when only live streams are
/// left, appends are refused (the stream loses resume, the live answer does not notice).
/// </summary>
/// <remarks>
/// Each stream copies its events into a few growing blocks rather than keeping one array per
/// event: a full store then holds thousands of objects, not millions, so that the collector's
/// pauses stay short while it is full. A finished stream's last block is trimmed to what it
/// holds, so the byte count is close to the memory its events take (an earlier block keeps its
/// unused end when a larger event opened the next one, and each event has a 16-byte slice).
/// Finished streams are kept in the order they ended, so that expiry and eviction take them from
/// the front without scanning every stream.
/// </remarks>
internal sealed class InMemoryStreamStore(IOptions<StreamStoreOptions> options, IOptions<StreamOptions> streams, TimeProvider time) : IStreamStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _streams = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _activeBySession = new(StringComparer.Ordinal);

    // Finished streams in the order they ended: expiry and eviction take from the front. An entry
    // removed otherwise (registered again) is skipped there. (A wall clock stepping back only
    // delays the expiry of what ended around the step.)
    private readonly Queue<Entry> _ended = new();

    // Streams not yet ended: only these can outlive their lifetime (their writer went away).
    private readonly HashSet<Entry> _live = [];
    private long _totalBytes;
    private DateTimeOffset _nextLifetimeSweep;

    public bool IsAvailable => true;

    // Memory does not go away.
    public event Action? Unavailable
    {
        add { }
        remove { }
    }

    public event Action? Available
    {
        add { }
        remove { }
    }

    public event Action<string>? StopRequested;

    public Task RequestStopAsync(string messageId, CancellationToken cancellationToken)
    {
        StopRequested?.Invoke(messageId);
        return Task.CompletedTask;
    }

    public event Action<string, string>? AckPublished;

    public Task PublishAckAsync(string messageId, string ack, CancellationToken cancellationToken)
    {
        AckPublished?.Invoke(messageId, ack);
        return Task.CompletedTask;
    }

    public long TotalBytes
    {
        get
        {
            lock (_gate)
            {
                return _totalBytes;
            }
        }
    }

    public Task<bool[]> WriteAsync(IReadOnlyList<StreamWrite> writes, CancellationToken cancellationToken)
    {
        var applied = new bool[writes.Count];
        lock (_gate)
        {
            for (var i = 0; i < writes.Count; i++)
            {
                applied[i] = Apply(writes[i]);
            }
        }

        return Task.FromResult(applied);
    }

    private bool Apply(StreamWrite write)
    {
        if (write.Begin is { } registration)
        {
            Evict();
            if (_streams.TryGetValue(registration.MessageId, out var previous))
            {
                Remove(registration.MessageId, previous);
            }

            var started = new Entry(registration, time.GetUtcNow());
            _streams[registration.MessageId] = started;
            _live.Add(started);
            _activeBySession[registration.SessionId] = registration.MessageId;
        }

        if (!_streams.TryGetValue(write.MessageId, out var entry))
        {
            return false;
        }

        if (entry.Stream.State != StoredStreamState.Live)
        {
            // Changes nothing. A write sent again whose end is already stored counts as applied when
            // the stream ended as it asks with all of its events (not when a resumer ended it
            // meanwhile, unless that was a failure too), or when it is a failed end alone (a
            // recovery's: the stream ended either way).
            return write.End is { } end
                && (end == entry.Stream.State || (write.Events.Count == 0 && end == StoredStreamState.Failed))
                && (write.Events.Count == 0 || entry.Events.Count == write.Events[0].Sequence + write.Events.Count);
        }

        var (applied, full) = AppendTo(entry, write.Events);
        if (entry.Removed)
        {
            // Making room dropped this very stream (its lifetime had passed): nothing more to record.
            return false;
        }

        if (write.RenewLeaseUntil is { } lease)
        {
            entry.Stream = entry.Stream with { LeaseExpiresAt = lease };
        }

        // Full of live streams: this one lost an event. (A run that does not continue the stream is
        // refused without harm: the stream still holds every event it had.)
        if (write.MarkIncomplete || full)
        {
            entry.Stream = entry.Stream with { Incomplete = true };
        }

        if (write.End is { } state)
        {
            entry.Stream = entry.Stream with { State = state };
            Ended(entry);
        }

        entry.Signal();
        return applied;
    }

    private (bool Applied, bool Full) AppendTo(Entry entry, List<StoredEvent> events)
    {
        if (events.Count == 0)
        {
            return (true, false);
        }

        // A write sent again may overlap what is stored: only the missing events are appended.
        var skip = entry.Events.Count - events[0].Sequence;
        if (skip < 0 || skip > events.Count)
        {
            return (false, false);
        }

        var bytes = events.Skip((int)skip).Sum(e => (long)e.Raw.Length);
        if (_totalBytes + bytes > options.Value.InMemoryMaxBytes)
        {
            Evict(bytes);
            if (entry.Removed)
            {
                return (false, false);
            }

            if (_totalBytes + bytes > options.Value.InMemoryMaxBytes)
            {
                // Full of live streams: this one loses resume, the others keep theirs.
                return (false, true);
            }
        }

        foreach (var evt in events.Skip((int)skip))
        {
            entry.Add(evt.Raw.Span);
        }

        _totalBytes += bytes;
        return (true, false);
    }

    public Task<bool> EndAbandonedAsync(string messageId, long eventCount, ReadOnlyMemory<byte> ending, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_streams.TryGetValue(messageId, out var entry) || entry.Stream.State != StoredStreamState.Live
                || entry.Events.Count != eventCount || entry.Stream.LeaseExpiresAt >= now)
            {
                return Task.FromResult(false);
            }

            entry.Add(ending.Span);
            _totalBytes += ending.Length;
            entry.Stream = entry.Stream with { State = StoredStreamState.Failed };
            Ended(entry, now);
            entry.Signal();
            return Task.FromResult(true);
        }
    }

    public Task<StreamRecord?> FindActiveAsync(string sessionId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            Evict();
            return Task.FromResult(_activeBySession.TryGetValue(sessionId, out var messageId) && _streams.TryGetValue(messageId, out var entry)
                ? Snapshot(entry)
                : null);
        }
    }

    public Task<string?> FindActiveIdAsync(string sessionId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            Evict();
            return Task.FromResult(_activeBySession.TryGetValue(sessionId, out var messageId) ? messageId : null);
        }
    }

    public Task<StreamRecord?> GetAsync(string messageId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_streams.TryGetValue(messageId, out var entry) ? Snapshot(entry) : null);
        }
    }

    public Task<IReadOnlyList<StoredEvent>> ReadAsync(string messageId, long fromSequence, int maxCount, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (maxCount <= 0 || !_streams.TryGetValue(messageId, out var entry) || fromSequence >= entry.Events.Count)
            {
                return Task.FromResult<IReadOnlyList<StoredEvent>>([]);
            }

            var start = (int)Math.Max(0, fromSequence);
            var count = Math.Min(maxCount, entry.Events.Count - start);
            var events = new StoredEvent[count];
            for (var i = 0; i < count; i++)
            {
                events[i] = new StoredEvent(start + i, entry.Events[start + i]);
            }

            return Task.FromResult<IReadOnlyList<StoredEvent>>(events);
        }
    }

    public Task<IReadOnlyList<StoredEvent>> ReadIfOwnedAsync(string messageId, string ownerHash, long fromSequence, int maxCount, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_streams.TryGetValue(messageId, out var entry) || !string.Equals(entry.Stream.OwnerHash, ownerHash, StringComparison.Ordinal))
            {
                return Task.FromResult<IReadOnlyList<StoredEvent>>([]);
            }
        }

        return ReadAsync(messageId, fromSequence, maxCount, cancellationToken);
    }

    public Task<IStreamFollower> FollowAsync(string messageId, CancellationToken cancellationToken) =>
        Task.FromResult<IStreamFollower>(new Follower(this, messageId, time));

    private static StreamRecord Snapshot(Entry entry) => entry.Stream with { EventCount = entry.Events.Count };

    private void Ended(Entry entry, DateTimeOffset? at = null)
    {
        entry.EndedAt = at ?? time.GetUtcNow();
        entry.Trim();
        _live.Remove(entry);
        _ended.Enqueue(entry);
    }

    /// <summary>
    /// Drops finished streams past their retention, and (a sweep of the live ones at most once a
    /// second) streams that never ended within their lifetime; then finished streams oldest first
    /// until <paramref name="room"/> bytes fit.
    /// </summary>
    private void Evict(long room = 0)
    {
        var now = time.GetUtcNow();
        var retention = options.Value.Retention;
        while (_ended.TryPeek(out var oldest) && (oldest.Removed || oldest.EndedAt + retention <= now))
        {
            Remove(_ended.Dequeue());
        }

        if (now >= _nextLifetimeSweep && _live.Count > 0)
        {
            _nextLifetimeSweep = now + TimeSpan.FromSeconds(1);
            var lifetime = streams.Value.MaxDuration + retention;
            List<Entry>? lapsed = null;
            foreach (var entry in _live)
            {
                if (entry.StartedAt + lifetime <= now)
                {
                    (lapsed ??= []).Add(entry);
                }
            }

            foreach (var entry in lapsed ?? [])
            {
                Remove(entry);
            }
        }

        while (_totalBytes + room > options.Value.InMemoryMaxBytes && _ended.TryDequeue(out var oldest))
        {
            Remove(oldest);
        }
    }

    private void Remove(Entry entry)
    {
        if (!entry.Removed)
        {
            Remove(entry.Stream.MessageId, entry);
        }
    }

    private void Remove(string messageId, Entry entry)
    {
        _streams.Remove(messageId);
        _totalBytes -= entry.Bytes;
        if (_activeBySession.TryGetValue(entry.Stream.SessionId, out var active) && active == messageId)
        {
            _activeBySession.Remove(entry.Stream.SessionId);
        }

        _live.Remove(entry);
        entry.Release();
        entry.Signal();
    }

    private sealed class Entry(StreamRegistration registration, DateTimeOffset startedAt)
    {
        public StreamRecord Stream { get; set; } = new(
            registration.MessageId, registration.SessionId, registration.AgentId, registration.OwnerHash,
            StoredStreamState.Live, 0, registration.ReplicaId, registration.LeaseExpiresAt, Incomplete: false, registration.TraceParent);

        public DateTimeOffset StartedAt { get; } = startedAt;

        public DateTimeOffset? EndedAt { get; set; }

        private const int FirstBlockBytes = 512;
        private const int MaxBlockBytes = 32 * 1024;
        private byte[] _block = [];
        private int _blockUsed;
        private int _blockFirstEvent;

        /// <summary>Each event's bytes: slices of the entry's blocks.</summary>
        public List<ReadOnlyMemory<byte>> Events { get; } = [];

        public long Bytes { get; private set; }

        /// <summary>No longer in the store (expired, evicted, or registered again).</summary>
        public bool Removed { get; private set; }

        /// <summary>Copies an event into the current block, or a new one twice as large (at least the event's size).</summary>
        public void Add(ReadOnlySpan<byte> raw)
        {
            if (_block.Length - _blockUsed < raw.Length)
            {
                var size = Math.Clamp(_block.Length * 2, FirstBlockBytes, MaxBlockBytes);
                _block = new byte[Math.Max(size, raw.Length)];
                _blockUsed = 0;
                _blockFirstEvent = Events.Count;
            }

            raw.CopyTo(_block.AsSpan(_blockUsed));
            Events.Add(_block.AsMemory(_blockUsed, raw.Length));
            _blockUsed += raw.Length;
            Bytes += raw.Length;
        }

        /// <summary>
        /// The stream has ended: its last block shrinks to what it holds, so that a finished stream
        /// keeps no spare room through its retention (readers keep the slices they already have).
        /// </summary>
        public void Trim()
        {
            Events.TrimExcess();
            if (_blockUsed == _block.Length)
            {
                return;
            }

            var trimmed = _block.AsSpan(0, _blockUsed).ToArray();
            for (var i = _blockFirstEvent; i < Events.Count; i++)
            {
                System.Runtime.InteropServices.MemoryMarshal.TryGetArray(Events[i], out var segment);
                Events[i] = trimmed.AsMemory(segment.Offset, segment.Count);
            }

            _block = trimmed;
        }

        /// <summary>Lets go of the events (a queue may still refer to the entry until its turn).</summary>
        public void Release()
        {
            Removed = true;
            Events.Clear();
            Events.Capacity = 0;
            _block = [];
            _blockUsed = 0;
            _blockFirstEvent = 0;
        }

        public TaskCompletionSource Changed { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>How many times it changed: what followers mark.</summary>
        public long Version { get; private set; }

        /// <summary>Wakes every waiter; the next waiters wait on a fresh signal.</summary>
        public void Signal()
        {
            var changed = Changed;
            Changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
            Version++;
            changed.TrySetResult();
        }
    }

    /// <summary>Follows one stream through its entry's change signal; a stream that is gone (evicted) counts as changed.</summary>
    private sealed class Follower(InMemoryStreamStore store, string messageId, TimeProvider time) : IStreamFollower
    {
        public long Mark
        {
            get
            {
                lock (store._gate)
                {
                    return store._streams.TryGetValue(messageId, out var entry) ? entry.Version : -1;
                }
            }
        }

        public async Task WaitAsync(long mark, TimeSpan timeout, CancellationToken cancellationToken)
        {
            Task changed;
            lock (store._gate)
            {
                if (!store._streams.TryGetValue(messageId, out var entry) || entry.Version != mark)
                {
                    return;
                }

                changed = entry.Changed.Task;
            }

            await changed.WaitAsync(timeout, time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancellationToken.ThrowIfCancellationRequested();
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
