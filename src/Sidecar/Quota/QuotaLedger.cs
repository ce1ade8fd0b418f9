using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sidecar.Streams;
using Sidecar.Telemetry;

namespace Sidecar.Quota;

/// <summary>
/// Records, when a stream ends, the settlement its reservation needs: confirm when the answer
/// completed (and was saved, when acknowledgments are awaited), release otherwise (an upstream
/// error, a drop, a stall, a failed save, a stop). Only streams of signed-in requests whose
/// answer carried a reservation id hold a reservation.
/// </summary>
internal sealed class QuotaLedger(
    StreamPumps pumps,
    IQuotaOutbox outbox,
    QuotaReconciler reconciler,
    TimeProvider time,
    ILogger<QuotaLedger> logger) : IHostedService
{
    private readonly HashSet<Task> _pending = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        pumps.Ended += OnEnded;
        return Task.CompletedTask;
    }

    /// <summary>Waits (bounded by the host) for the settlements being recorded: a restart must not lose them.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        pumps.Ended -= OnEnded;
        Task[] pending;
        lock (_pending)
        {
            pending = [.. _pending];
        }

        await Task.WhenAll(pending).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>What a stream that ended this way owes its reservation.</summary>
    public static QuotaAction ActionFor(StreamOutcome outcome) =>
        outcome == StreamOutcome.Completed ? QuotaAction.Confirm : QuotaAction.Release;

    private void OnEnded(StreamPump pump, StreamOutcome outcome)
    {
        if (pump.Exchange.ReservationId is not { } reservation)
        {
            return;
        }

        var item = new QuotaItem(reservation, ActionFor(outcome), outcome.Tag(), pump.Exchange.SessionId, time.GetUtcNow().ToUnixTimeMilliseconds());
        var task = EnqueueAsync(item);
        lock (_pending)
        {
            _pending.Add(task);
        }

        _ = task.ContinueWith(
            t =>
            {
                lock (_pending)
                {
                    _pending.Remove(t);
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>Enqueues, trying again while the outbox (Redis) is away, for as long as the process runs.</summary>
    private async Task EnqueueAsync(QuotaItem item)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), time);
                await outbox.EnqueueAsync(item, timeout.Token);
                reconciler.Wake();
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Log.QuotaEnqueueFailed(logger, item.MessageId, item.Action.ToString(), attempt, ex.GetType().Name);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, attempt)), time);
            }
        }
    }
}
