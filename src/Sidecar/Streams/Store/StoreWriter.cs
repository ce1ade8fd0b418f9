using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Telemetry;

namespace Sidecar.Streams.Store;

/// <summary>
/// Writes every stream's events to the store in the background, many streams per batch, so
/// that the live answer never waits on the store and a networked store pays one round trip per
/// batch. Bounded: past <see cref="StreamStoreOptions.MaxPendingBytes"/> waiting, new events are
/// dropped and their streams marked incomplete (they lose resume, the answers go on).
/// </summary>
internal sealed class StoreWriter(
    IStreamStore store,
    IOptions<StreamStoreOptions> options,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<StoreWriter> logger) : BackgroundService
{
    private const int MaxBatchOps = 4096;
    private const int MaxSpareWrites = 1024;

    // The spare writes' event lists, kept within a budget (24 bytes an event, so 1.5 MiB in all).
    // Unpaced, a stream's write holds about a hundred events, and dropping every list that grew
    // past 64 (the earlier rule) allocated them afresh per batch; they lived through the store's
    // round trip, so the collector copied them too. A list far larger than its last use is not
    // kept: after a burst, large lists would otherwise hold the budget while small writes went
    // without.
    private const int MaxSpareEventCapacity = 64 * 1024;
    private const int SmallListCapacity = 64;

    // One batch is one store call: keep it small enough not to stall Redis or pass the timeout.
    private const long MaxBatchBytes = 1024 * 1024;

    // Once the queue has held more ops than this at once (a stall of the store under load), it is
    // replaced by a fresh one when drained: an unbounded channel's queue keeps the largest ring it
    // grew to (about 80 bytes per op), which after a long stall at MaxPendingBytes would be tens of
    // MiB; up to this bound it is kept (a ring of 5-10 MiB: its segments double). The ops waiting
    // are counted (the channel's reader cannot count them). Counting instead the ops read since
    // the queue was last empty, with a bound of 16K, replaced it several times a second under an
    // unpaced load whose store round trips let thousands gather: each fresh queue grew its ring
    // again, in arrays large enough for the large object heap, whose collections are full ones.
    private const int RenewQueueAfterOps = 64 * 1024;

    // Replaced only by the writer, when empty; ops written to the old one before it is completed
    // are written before any of the new one's, so each stream's ops keep their order.
    private Channel<TeeOp> _ops = NewQueue();
    private readonly ConcurrentDictionary<StreamTee, byte> _open = new();
    private readonly ConcurrentDictionary<ITimer, byte> _recoveries = new();

    // The batch being built: the writer builds one at a time, so these are reused.
    private readonly Dictionary<StreamTee, StreamWrite> _byTee = [];
    private readonly List<(StreamTee Tee, StreamWrite Write)> _order = [];
    private readonly List<StreamWrite> _writes = [];

    // Writes of earlier batches, emptied for the next ones: a batch at a model's pace holds one
    // event for each of many streams, and a write (with its event list) per stream per batch was
    // a good part of what the tee allocated per event.
    private readonly Stack<StreamWrite> _spareWrites = [];
    private int _spareEventCapacity;
    private long _pendingBytes;

    // Ops queued and not yet taken into a batch (across a queue's replacement).
    private int _queuedOps;
    private int _watching;

    // Registrations queued and not yet taken into a batch: while there is one, the writer does
    // not wait (WriteDelay) before its batch. A registration queued during a wait ends it.
    private int _registrationsQueued;
    private TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The newest stream of each session whose registration's write has no outcome yet: a stop or
    // resume on this replica waits for it rather than find the session's previous stream, or none.
    // (Two streams of one session opened at once may leave the older here; the wait is the same.)
    private readonly ConcurrentDictionary<string, StreamTee> _registering = new(StringComparer.Ordinal);
    private long _batches;
    private long _events;

    /// <summary>Starts teeing one stream: its registration is queued first.</summary>
    public StreamTee Open(StreamRegistration registration)
    {
        if (Interlocked.Exchange(ref _watching, 1) == 0)
        {
            // The store going away costs every stream being written its resume, at once rather
            // than when their next write times out.
            store.Unavailable += () =>
            {
                foreach (var open in _open.Keys)
                {
                    open.Lose("store_down");
                }
            };
        }

        var tee = new StreamTee(this, registration);
        _registering[registration.SessionId] = tee;
        _open.TryAdd(tee, 0);
        if (!store.IsAvailable)
        {
            tee.Lose("store_down");
        }

        Interlocked.Increment(ref _registrationsQueued);
        if (!Enqueue(new TeeOp(tee, registration, null, null, null)))
        {
            // The writer has stopped (shutting down): nothing of this stream will be stored.
            Interlocked.Decrement(ref _registrationsQueued);
            tee.Lose("stopped");
            tee.RegistrationAnswered();
        }

        Volatile.Read(ref _registered).TrySetResult();
        return tee;
    }

    internal void Append(StreamTee tee, StoredEvent evt)
    {
        if (Interlocked.Add(ref _pendingBytes, evt.Raw.Length) > options.Value.MaxPendingBytes)
        {
            Interlocked.Add(ref _pendingBytes, -evt.Raw.Length);
            tee.Lose("backlog");
            return;
        }

        if (!Enqueue(new TeeOp(tee, null, evt, null, null)))
        {
            Interlocked.Add(ref _pendingBytes, -evt.Raw.Length);
            tee.Lose("stopped");
        }
    }

    internal void End(StreamTee tee, StoredStreamState state)
    {
        _open.TryRemove(tee, out _);
        tee.Ended = true;
        Enqueue(new TeeOp(tee, null, null, state, null));
    }

    internal void RenewLease(StreamTee tee, DateTimeOffset until)
    {
        // An ended stream has no lease to keep (its pump may still be draining the upstream).
        if (!tee.Ended)
        {
            Enqueue(new TeeOp(tee, null, null, null, until));
        }
    }

    internal void Lost(StreamTee tee, string reason)
    {
        metrics.StoreWriteLost(reason);
        Log.StoreWriteLost(logger, tee.MessageId, reason);
    }

    /// <summary>How long a client's headers and its pump's reads wait for a stream's registration at most.</summary>
    internal TimeSpan RegistrationWaitLimit => options.Value.OperationTimeout;

    /// <summary>
    /// How long what needs the stream in the store (a live client that fell behind, a stop or a
    /// resume on this replica) waits for its registration to settle at most: the lease, the time
    /// after which resumers take a silent producer for gone.
    /// </summary>
    internal TimeSpan RegistrationSettleLimit => options.Value.LeaseDuration;

    /// <summary>The session's newest stream on this replica while the write of its registration has no outcome; else null.</summary>
    internal StreamTee? Registering(string sessionId) => _registering.TryGetValue(sessionId, out var tee) ? tee : null;

    internal void Answered(StreamTee tee) =>
        _registering.TryRemove(new KeyValuePair<string, StreamTee>(tee.SessionId, tee));

    internal TimeProvider Time => time;

    /// <summary>For tests: called on the writer's loop each time a batch has emptied its queue.</summary>
    internal Action? CaughtUp { get; set; }

    /// <summary>How many batches the writer has sent to the store.</summary>
    internal long Batches => Interlocked.Read(ref _batches);

    /// <summary>
    /// For tests: called on the writer's loop when its queue is being replaced after a backlog,
    /// with false just before the fresh queue is published, with true just after (the old one
    /// still to be read).
    /// </summary>
    internal Action<bool>? QueueReplacing { get; set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var ops = Volatile.Read(ref _ops);

        // Whether the last batch emptied the queue (as it is before the first).
        var caughtUp = true;

        // The most ops the current queue has held at once: what its ring grew to. Between two
        // batches the queue only grows, so the count before each batch is the peak since the last.
        var queuePeak = 0;
        try
        {
            while (true)
            {
                if (!await ops.Reader.WaitToReadAsync(stoppingToken))
                {
                    // This queue is done with: replaced (go on with the new one), or shut down.
                    var current = Volatile.Read(ref _ops);
                    if (ReferenceEquals(current, ops))
                    {
                        break;
                    }

                    ops = current;
                    continue;
                }

                if (caughtUp && ReferenceEquals(ops, Volatile.Read(ref _ops)))
                {
                    // Caught up (the last batch emptied the queue): let events gather. Not for
                    // what is left in a queue being replaced: the current one gathers once.
                    await GatherAsync(stoppingToken);
                }

                queuePeak = Math.Max(queuePeak, Volatile.Read(ref _queuedOps));
                Interlocked.Add(ref _queuedOps, -await WriteBatchAsync(ops.Reader));
                caughtUp = !ops.Reader.TryPeek(out _);
                if (caughtUp)
                {
                    if (queuePeak > RenewQueueAfterOps && ReferenceEquals(ops, Volatile.Read(ref _ops)))
                    {
                        // Drained after a backlog: a fresh queue, and the old one (with its large
                        // ring) is read to its end, then let go.
                        QueueReplacing?.Invoke(false);
                        Volatile.Write(ref _ops, NewQueue());
                        QueueReplacing?.Invoke(true);
                        ops.Writer.TryComplete();
                        queuePeak = 0;
                    }

                    CaughtUp?.Invoke();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        // Shutting down: the pumps have ended (they stop first); write what they left, the queue
        // being read first (it may be one just replaced), then the current one.
        var last = Volatile.Read(ref _ops);
        last.Writer.TryComplete();
        foreach (var queue in ReferenceEquals(ops, last) ? [last] : new[] { ops, last })
        {
            while (queue.Reader.TryPeek(out _))
            {
                await WriteBatchAsync(queue.Reader);
            }
        }

        Log.StoreWriterTotals(logger, _batches, _events);
    }

    /// <summary>
    /// Waits <see cref="StreamStoreOptions.WriteDelay"/> (within the lease's bound) before a batch,
    /// unless a registration waits or comes meanwhile: a new stream's client waits for its
    /// registration to be stored.
    /// </summary>
    private async Task GatherAsync(CancellationToken stoppingToken)
    {
        var delay = options.Value.EffectiveWriteDelay;
        if (delay <= TimeSpan.Zero || Volatile.Read(ref _registrationsQueued) > 0)
        {
            return;
        }

        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Exchange(ref _registered, registered);
        // Read again once the new signal is in place: a registration queued before it was is seen here.
        if (Volatile.Read(ref _registrationsQueued) > 0)
        {
            return;
        }

        await registered.Task.WaitAsync(delay, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private static Channel<TeeOp> NewQueue() => Channel.CreateUnbounded<TeeOp>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Queues an op; false once the writer has stopped.</summary>
    private bool Enqueue(TeeOp op)
    {
        while (true)
        {
            var ops = Volatile.Read(ref _ops);
            if (ops.Writer.TryWrite(op))
            {
                Interlocked.Increment(ref _queuedOps);
                return true;
            }

            // Completed: replaced by a fresh queue (write there), or the writer has stopped.
            if (ReferenceEquals(ops, Volatile.Read(ref _ops)))
            {
                return false;
            }
        }
    }

    /// <summary>Writes one batch of what waits; returns how many ops it took.</summary>
    private async Task<int> WriteBatchAsync(ChannelReader<TeeOp> reader)
    {
        var byTee = _byTee;
        var order = _order;
        var writes = _writes;
        byTee.Clear();
        order.Clear();
        writes.Clear();
        long bytes = 0;
        var events = 0;
        var count = 0;
        for (; count < MaxBatchOps && bytes < MaxBatchBytes && reader.TryRead(out var op); count++)
        {
            if (!byTee.TryGetValue(op.Tee, out var write) || write.End is not null)
            {
                write = NewWrite(op.Tee.MessageId);
                byTee[op.Tee] = write;
                order.Add((op.Tee, write));
            }

            if (op.Begin is not null)
            {
                Interlocked.Decrement(ref _registrationsQueued);
            }

            write.Begin ??= op.Begin;
            if (op.Event is { } evt)
            {
                bytes += evt.Raw.Length;
                if (!op.Tee.IsLost)
                {
                    write.Events.Add(evt);
                    events++;
                }
            }

            write.End ??= op.End;
            if (op.RenewLeaseUntil is { } lease)
            {
                write.RenewLeaseUntil = lease;
            }

            write.MarkIncomplete |= op.Tee.IsLost;
        }

        foreach (var (_, write) in order)
        {
            writes.Add(write);
        }

        Interlocked.Increment(ref _batches);
        _events += events;
        var applied = await WriteWithRetriesAsync(writes, events);
        Interlocked.Add(ref _pendingBytes, -bytes);
        for (var i = 0; i < order.Count; i++)
        {
            var (tee, write) = order[i];
            if (!applied[i])
            {
                // Lost before its registration counts as answered: whoever waited for it sees the loss.
                tee.Lose("store_error");
                if (write.End is not null)
                {
                    // This write carried the end: rewrite it (an earlier failure leaves the end to its own write).
                    ScheduleRecovery(tee);
                }
            }
            else if (write.End is not null)
            {
                // Its end is stored: nothing left to rewrite.
                tee.Recovered();
            }

            if (write.Begin is not null)
            {
                tee.RegistrationAnswered();
            }
        }

        foreach (var (_, write) in order)
        {
            // Not a list far larger than this batch needed (a burst's), nor past the budget.
            var capacity = write.Events.Capacity;
            if (capacity <= 2 * Math.Max(write.Events.Count, SmallListCapacity) && _spareWrites.Count < MaxSpareWrites && _spareEventCapacity + capacity <= MaxSpareEventCapacity)
            {
                // Emptied now, so that a spare does not keep its events' bytes alive.
                write.Events.Clear();
                _spareEventCapacity += capacity;
                _spareWrites.Push(write);
            }
        }

        return count;
    }

    /// <summary>A write for one stream in the batch being built: a spare one emptied, or a new one.</summary>
    private StreamWrite NewWrite(string messageId)
    {
        if (!_spareWrites.TryPop(out var spare))
        {
            return new StreamWrite(messageId);
        }

        _spareEventCapacity -= spare.Events.Capacity;
        return spare.Reuse(messageId);
    }

    /// <summary>
    /// Writes a batch; when the store call fails or times out (a stall, a failover, a reconnect),
    /// sends it again with a growing delay for up to <see cref="StreamStoreOptions.EffectiveWriteRetryWindow"/>.
    /// All false when it never went through.
    /// </summary>
    private async Task<bool[]> WriteWithRetriesAsync(List<StreamWrite> writes, int events)
    {
        var first = time.GetTimestamp();
        var delay = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            var started = time.GetTimestamp();
            try
            {
                using var timeout = new CancellationTokenSource(options.Value.OperationTimeout, time);
                var applied = await store.WriteAsync(writes, timeout.Token);
                metrics.StoreBatchWritten(events, time.GetElapsedTime(started));
                return applied;
            }
            catch (Exception ex)
            {
                Log.StoreWriteFailed(logger, writes.Count, attempt, ex.GetType().Name);
            }

            if (time.GetElapsedTime(first) + delay > options.Value.EffectiveWriteRetryWindow)
            {
                return new bool[writes.Count];
            }

            await Task.Delay(delay, time);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
        }
    }

    /// <summary>
    /// A stream whose last write failed (Redis stalled or away at its end): its stored copy would
    /// stay live until its lease lapses. Its end is written again, marked incomplete, a few times
    /// with a growing delay, so that resumers soon get "resume unavailable" rather than a wait.
    /// </summary>
    private void ScheduleRecovery(StreamTee tee)
    {
        const int MaxAttempts = 5;
        var attempt = tee.NextRecoveryAttempt();
        if (attempt > MaxAttempts)
        {
            return;
        }

        var delay = TimeSpan.FromSeconds(Math.Pow(2, attempt - 1));
        ITimer? timer = null;
        timer = time.CreateTimer(
            _ =>
            {
                _recoveries.TryRemove(timer!, out byte _);
                timer!.Dispose();
                Enqueue(new TeeOp(tee, null, null, StoredStreamState.Failed, null));
            },
            null,
            delay,
            Timeout.InfiniteTimeSpan);

        // Referenced until it fires: an unreferenced timer may be collected first.
        _recoveries.TryAdd(timer, 0);
    }

    private readonly record struct TeeOp(StreamTee Tee, StreamRegistration? Begin, StoredEvent? Event, StoredStreamState? End, DateTimeOffset? RenewLeaseUntil);
}

/// <summary>One stream's side of the <see cref="StoreWriter"/>: what the pump writes through.</summary>
internal sealed class StreamTee(StoreWriter writer, StreamRegistration registration)
{
    private Action? _onLost;

    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _lost;
    private int _recoveryAttempts;

    /// <summary>
    /// Completes once the stream's registration was written (or failed, or resume was lost): from
    /// then on a resume on any replica finds the stream.
    /// </summary>
    public Task Registered => _registered.Task;

    /// <summary>
    /// Completes once the store answered the write of the registration (stored or failed), or it was
    /// never sent: from then on the store's view of the session's active stream includes this one,
    /// if it was stored. A stream that lost resume earlier may still have its registration written.
    /// </summary>
    public Task RegistrationWritten => _answered.Task;

    /// <summary>The registration's write has its outcome (a failure was counted as a loss first).</summary>
    internal void RegistrationAnswered()
    {
        writer.Answered(this);
        _registered.TrySetResult();
        _answered.TrySetResult();
    }

    /// <summary>
    /// Waits until <see cref="Registered"/> completes, for at most the store's operation timeout:
    /// a store that does not answer holds neither the client's headers nor the pump's reads longer.
    /// </summary>
    public Task WaitRegisteredAsync(CancellationToken cancellationToken) =>
        WaitRegisteredAsync(writer.RegistrationWaitLimit, cancellationToken);

    /// <summary>Waits until <see cref="Registered"/> completes, for at most <paramref name="limit"/>; whether it did.</summary>
    public Task<bool> WaitRegisteredAsync(TimeSpan limit, CancellationToken cancellationToken) =>
        WaitAsync(Registered, limit, cancellationToken);

    /// <summary>Waits until <see cref="RegistrationWritten"/> completes, for at most <paramref name="limit"/>; whether it did.</summary>
    public Task<bool> WaitRegistrationWrittenAsync(TimeSpan limit, CancellationToken cancellationToken) =>
        WaitAsync(RegistrationWritten, limit, cancellationToken);

    private async Task<bool> WaitAsync(Task task, TimeSpan limit, CancellationToken cancellationToken)
    {
        try
        {
            await task.WaitAsync(limit, writer.Time, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>How long what needs the stream in the store waits for its registration to settle at most.</summary>
    public TimeSpan SettleLimit => writer.RegistrationSettleLimit;

    public string MessageId => registration.MessageId;

    public string SessionId => registration.SessionId;

    /// <summary>The hash of the identity of the principal that started the stream.</summary>
    public string OwnerHash => registration.OwnerHash;

    /// <summary>The stream has ended (its end was handed to the writer).</summary>
    public bool Ended { get; set; }

    /// <summary>Counts a rewrite of a lost stream's end; returns its number (from 1).</summary>
    internal int NextRecoveryAttempt() => Interlocked.Increment(ref _recoveryAttempts);

    /// <summary>A write applied: a pending rewrite of the end is no longer needed.</summary>
    internal void Recovered() => Interlocked.Exchange(ref _recoveryAttempts, int.MaxValue / 2);

    /// <summary>Whether an event of this stream failed to reach the store: it can no longer be resumed whole.</summary>
    public bool IsLost => Volatile.Read(ref _lost) == 1;

    /// <summary>Calls <paramref name="handler"/> once when the stream loses resume (at once if it already has).</summary>
    public void OnLost(Action handler)
    {
        Volatile.Write(ref _onLost, handler);
        if (IsLost && Interlocked.Exchange(ref _onLost, null) is { } now)
        {
            now();
        }
    }

    public void Append(long sequence, ReadOnlyMemory<byte> raw)
    {
        if (!IsLost)
        {
            writer.Append(this, new StoredEvent(sequence, raw));
        }
    }

    public void End(StoredStreamState state) => writer.End(this, state);

    /// <summary>Tells resumers on every replica that this replica still produces the stream.</summary>
    public void RenewLease(DateTimeOffset until) => writer.RenewLease(this, until);

    internal void Lose(string reason)
    {
        if (Interlocked.Exchange(ref _lost, 1) == 0)
        {
            writer.Lost(this, reason);
            Interlocked.Exchange(ref _onLost, null)?.Invoke();
        }

        _registered.TrySetResult();
    }
}
