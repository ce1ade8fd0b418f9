using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Quota;

/// <summary>
/// Works the quota outbox: claims due items (atomically, with a lease), settles each with the quota
/// API, and removes it (settled, already settled, unknown) or puts it back with a growing delay
/// (failed: never dropped). Every <see cref="QuotaOptions.SweepInterval"/> it also releases
/// reservations stuck in <c>reserved</c> with no live stream. At shutdown, the claims it holds
/// are handed back at once.
/// </summary>
internal sealed class QuotaReconciler(
    IQuotaOutbox outbox,
    QuotaApi api,
    Persistence.MessageRepair repair,
    IStreamStore store,
    StreamPumps pumps,
    SidecarReplica replica,
    IOptionsMonitor<QuotaOptions> options,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<QuotaReconciler> logger) : BackgroundService
{
    private readonly Dictionary<string, QuotaItem> _claimed = new(StringComparer.Ordinal);
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DateTimeOffset _nextSweep;

    /// <summary>Raised after each round of work (tests wait on it).</summary>
    public event Action? RoundCompleted;

    /// <summary>Something was enqueued on this replica: look now rather than at the next poll.</summary>
    public void Wake() => _wake.TrySetResult();

    // Items this replica is still trying to put into the outbox (Redis away): the sweep must not
    // release a reservation whose confirmation is only waiting for the outbox.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _enqueuing = new(StringComparer.Ordinal);

    /// <summary>Marks an item as on its way into the outbox until the result is disposed.</summary>
    public IDisposable Enqueuing(string key)
    {
        _enqueuing.AddOrUpdate(key, 1, static (_, n) => n + 1);
        return new EnqueuingMark(this, key);
    }

    private sealed class EnqueuingMark(QuotaReconciler owner, string key) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0
                && owner._enqueuing.AddOrUpdate(key, 0, static (_, n) => n - 1) <= 0)
            {
                owner._enqueuing.TryRemove(new KeyValuePair<string, int>(key, 0));
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _nextSweep = time.GetUtcNow() + options.CurrentValue.SweepInterval;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                // Taken before the round: a Wake during the round completes it, and the wait below
                // returns at once instead of missing it.
                var wake = Volatile.Read(ref _wake);
                var worked = 0;
                try
                {
                    worked = await RunRoundAsync(stoppingToken);
                    if (options.CurrentValue.SweepInterval > TimeSpan.Zero && !string.IsNullOrWhiteSpace(options.CurrentValue.BaseUrl) && time.GetUtcNow() >= _nextSweep)
                    {
                        _nextSweep = time.GetUtcNow() + options.CurrentValue.SweepInterval;
                        await SweepAsync(stoppingToken);
                    }

                    await ReportDepthAsync(stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // The outbox (Redis) is away: the items wait where they are.
                    Log.QuotaRoundFailed(logger, ex.GetType().Name);
                }

                RoundCompleted?.Invoke();
                if (worked == 0)
                {
                    await wake.Task.WaitAsync(api.IsOpen ? options.CurrentValue.BreakDuration : options.CurrentValue.PollInterval, time, stoppingToken)
                        .ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }

                if (wake.Task.IsCompleted)
                {
                    Interlocked.CompareExchange(ref _wake, new(TaskCreationOptions.RunContinuationsAsynchronously), wake);
                }
            }
        }
        finally
        {
            await HandBackClaimsAsync();
        }
    }

    /// <summary>One round: claim what is due, settle it. Returns how many items were worked.</summary>
    private async Task<int> RunRoundAsync(CancellationToken stoppingToken)
    {
        var o = options.CurrentValue;
        var now = time.GetUtcNow();
        var leaseEnd = now + o.ClaimLease;
        // Bounded, but not cancelled by the stop: a claim that went through is recorded below, so
        // that a stop during the call still hands its items back rather than leaving them to their
        // lease.
        IReadOnlyList<QuotaItem> items;
        using (var claiming = new CancellationTokenSource(o.AttemptTimeout, time))
        {
            items = await outbox.ClaimAsync(replica.Id, now, leaseEnd, o.BatchSize, claiming.Token);
        }

        foreach (var item in items)
        {
            lock (_claimed)
            {
                _claimed[item.Key] = item;
            }
        }

        foreach (var item in items)
        {
            if (stoppingToken.IsCancellationRequested)
            {
                break;
            }

            try
            {
                var attempt = item.Action == QuotaAction.Save ? repair.AttemptTimeout : o.AttemptTimeout;
                if (leaseEnd - time.GetUtcNow() < attempt + attempt)
                {
                    // Not enough of the lease left for a call: handed back rather than raced with
                    // the replica that may take it over.
                    await outbox.RescheduleAsync(item, replica.Id, time.GetUtcNow(), stoppingToken);
                    continue;
                }

                await SettleAsync(item, stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // One bad item never holds up the rest: it waits its backoff like a failed call.
                Log.QuotaRoundFailed(logger, ex.GetType().Name);
                await TryRescheduleAsync(item with { Attempts = item.Attempts + 1 }, Backoff(item.Attempts + 1), stoppingToken);
            }
            finally
            {
                // Stopping mid-call: the item stays listed, and is handed back for another replica.
                if (!stoppingToken.IsCancellationRequested)
                {
                    lock (_claimed)
                    {
                        _claimed.Remove(item.Key);
                    }
                }
            }
        }

        return items.Count;
    }

    private async Task SettleAsync(QuotaItem item, CancellationToken stoppingToken)
    {
        if (item.Action == QuotaAction.Save)
        {
            await RepairAsync(item, stoppingToken);
            return;
        }

        var action = item.Action == QuotaAction.Confirm ? "confirm" : "release";
        var (result, found, status) = await api.SettleAsync(item, stoppingToken);
        switch (result)
        {
            case SettleResult.Settled:
                await outbox.CompleteAsync(item.Key, replica.Id, stoppingToken);
                metrics.QuotaSettled(action, "settled");
                Log.QuotaSettled(logger, item.MessageId, action, item.Attempts + 1);
                break;
            case SettleResult.AlreadySettled:
                await outbox.CompleteAsync(item.Key, replica.Id, stoppingToken);
                metrics.QuotaSettled(action, "already_settled");
                var wanted = item.Action == QuotaAction.Confirm ? "confirmed" : "released";
                if (found is not null && found != wanted)
                {
                    // "Wanted release, found confirmed": a user paid for a failed answer.
                    metrics.QuotaMismatch(action, found);
                    Log.QuotaMismatch(logger, item.MessageId, action, found, item.Reason);
                }

                break;
            case SettleResult.NotFound:
                await outbox.CompleteAsync(item.Key, replica.Id, stoppingToken);
                metrics.QuotaSettled(action, "not_found");
                Log.QuotaUnknownReservation(logger, item.MessageId, action);
                break;
            default:
                var attempts = item.Attempts + 1;
                var delay = Backoff(attempts);
                await outbox.RescheduleAsync(item with { Attempts = attempts }, replica.Id, time.GetUtcNow() + delay, stoppingToken);
                metrics.QuotaSettled(action, "retry");
                Log.QuotaRetry(logger, item.MessageId, action, attempts, status, found, delay.TotalSeconds);
                break;
        }
    }

    /// <summary>Submits a rebuilt message again: saved and rejected items leave the outbox, failures wait and try again.</summary>
    private async Task RepairAsync(QuotaItem item, CancellationToken stoppingToken)
    {
        var (result, status) = await repair.SaveAsync(item, stoppingToken);
        switch (result)
        {
            case Persistence.RepairResult.Saved:
                await outbox.CompleteAsync(item.Key, replica.Id, stoppingToken);
                metrics.Repair("saved");
                Log.RepairSaved(logger, item.MessageId, item.Attempts + 1);
                break;
            case Persistence.RepairResult.Rejected:
                await outbox.CompleteAsync(item.Key, replica.Id, stoppingToken);
                metrics.Repair("rejected");
                Log.RepairRejected(logger, item.MessageId, status);
                break;
            default:
                var attempts = item.Attempts + 1;
                var delay = Backoff(attempts);
                await outbox.RescheduleAsync(item with { Attempts = attempts }, replica.Id, time.GetUtcNow() + delay, stoppingToken);
                metrics.Repair("retry");
                Log.RepairRetry(logger, item.MessageId, attempts, status, delay.TotalSeconds);
                break;
        }
    }

    private async Task TryRescheduleAsync(QuotaItem item, TimeSpan delay, CancellationToken stoppingToken)
    {
        try
        {
            await outbox.RescheduleAsync(item, replica.Id, time.GetUtcNow() + delay, stoppingToken);
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            // The claim lapses by itself.
            Log.QuotaRoundFailed(logger, ex.GetType().Name);
        }
    }

    /// <summary>Exponential with full jitter in its upper half: RetryDelay × 2^(attempts-1), capped.</summary>
    private TimeSpan Backoff(int attempts)
    {
        var o = options.CurrentValue;
        var exponential = o.RetryDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempts - 1, 30));
        var capped = Math.Min(exponential, o.MaxRetryDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (0.5 + (Random.Shared.NextDouble() / 2)));
    }

    /// <summary>Releases reservations stuck in <c>reserved</c> whose stream is not live anywhere (and not already queued).</summary>
    private async Task SweepAsync(CancellationToken stoppingToken)
    {
        var stuck = await api.ListStuckAsync(options.CurrentValue.StuckAfter, stoppingToken);
        var live = pumps.Active.Select(p => p.State.MessageId).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var released = 0;
        foreach (var id in stuck)
        {
            if (!StreamIds.IsValid(id) || live.Contains(id) || _enqueuing.ContainsKey(QuotaItem.SettlementKey(id))
                || (await store.GetAsync(id, stoppingToken))?.State == StoredStreamState.Live
                || await outbox.ContainsAsync(QuotaItem.SettlementKey(id), stoppingToken))
            {
                continue;
            }

            if (await outbox.EnqueueAsync(new QuotaItem(id, QuotaAction.Release, "stuck", null, time.GetUtcNow().ToUnixTimeMilliseconds()), stoppingToken))
            {
                released++;
            }
        }

        metrics.QuotaStuckFound(stuck.Count, released);
        Log.QuotaSweep(logger, stuck.Count, released);
    }

    private async Task ReportDepthAsync(CancellationToken stoppingToken)
    {
        var (depth, oldest) = await outbox.StatsAsync(stoppingToken);
        metrics.QuotaOutbox(depth, oldest is { } at ? time.GetUtcNow() - at : TimeSpan.Zero);
    }

    /// <summary>At shutdown: the items this replica holds become due at once, for another replica.</summary>
    private async Task HandBackClaimsAsync()
    {
        List<QuotaItem> held;
        lock (_claimed)
        {
            held = [.. _claimed.Values];
            _claimed.Clear();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), time);
        foreach (var item in held)
        {
            try
            {
                await outbox.RescheduleAsync(item, replica.Id, time.GetUtcNow(), timeout.Token);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The claim lapses by itself after its lease.
                Log.QuotaRoundFailed(logger, ex.GetType().Name);
            }
        }
    }
}
