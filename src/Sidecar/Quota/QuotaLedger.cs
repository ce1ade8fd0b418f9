using System.Buffers;
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
    QuotaApi api,
    Microsoft.Extensions.Options.IOptionsMonitor<QuotaOptions> options,
    SidecarMetrics metrics,
    TimeProvider time,
    ILogger<QuotaLedger> logger) : IHostedService
{
    private readonly HashSet<Task> _pending = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        pumps.Ended += OnEnded;
        pumps.BeforeFailureEnding = ReleaseWhileConnectedAsync;
        return Task.CompletedTask;
    }

    /// <summary>
    /// A failed answer whose client is still there: release now (one try, time-boxed). Settled (or
    /// found released, or unknown): nothing is left to record. Otherwise the client gets a transient
    /// <c>data-quota-warning</c> part, and the release goes to the outbox as usual.
    /// </summary>
    private async Task<byte[]?> ReleaseWhileConnectedAsync(StreamPump pump, StreamOutcome outcome)
    {
        var current = options.CurrentValue;
        if (!current.WarnClient || pump.Exchange.ReservationId is not { } reservation || outcome == StreamOutcome.ShuttingDown)
        {
            // At shutdown the time is the drain's: the outbox (and another replica) releases it.
            return null;
        }

        var item = new QuotaItem(reservation, QuotaAction.Release, outcome.Tag(), pump.Exchange.SessionId, time.GetUtcNow().ToUnixTimeMilliseconds());
        using var timeout = new CancellationTokenSource(current.InlineReleaseTimeout, time);
        SettleResult result;
        string? found;
        try
        {
            (result, found, _) = await api.SettleAsync(item, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // The quota API did not answer in time: the client is warned, the outbox releases later.
            (result, found) = (SettleResult.Failed, null);
        }

        switch (result)
        {
            case SettleResult.Settled:
            case SettleResult.AlreadySettled when found == "released":
            case SettleResult.NotFound:
                metrics.QuotaSettled("release", result == SettleResult.Settled ? "settled" : result == SettleResult.NotFound ? "not_found" : "already_settled");
                pump.Exchange.ReservationSettled = true;
                return null;
            case SettleResult.AlreadySettled:
                // Confirmed already: the user paid for a failed answer; nothing will give it back.
                metrics.QuotaSettled("release", "already_settled");
                metrics.QuotaMismatch("release", found ?? "unknown");
                Log.QuotaMismatch(logger, reservation, "release", found ?? "unknown", outcome.Tag());
                pump.Exchange.ReservationSettled = true;
                return WarningPart(reservation, current.NotRestoredMessage);
            default:
                metrics.QuotaLiveWarning();
                return WarningPart(reservation, current.WarningMessage);
        }
    }

    private static byte[] WarningPart(string reservation, string message)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        buffer.Write("data: "u8);
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("type", "data-quota-warning");
            json.WriteStartObject("data");
            json.WriteString("reservationId", reservation);
            json.WriteString("message", message);
            json.WriteEndObject();
            json.WriteBoolean("transient", true);
            json.WriteEndObject();
        }

        buffer.Write("\n\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Waits (bounded by the host) for the settlements being recorded: a restart must not lose them.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        pumps.Ended -= OnEnded;
        pumps.BeforeFailureEnding = null;
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
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        if (outcome is StreamOutcome.PersistenceFailed or StreamOutcome.PersistenceUnacknowledged
            && pump.Message is { } message && pump.State.MessageId is { } messageId)
        {
            // Save repair: the message the client assembled, submitted again until saved.
            var payload = new System.Text.Json.Nodes.JsonObject { ["sessionId"] = pump.Exchange.SessionId, ["message"] = message.Build() }.ToJsonString();
            Track(EnqueueAsync(new QuotaItem(messageId, QuotaAction.Save, outcome.Tag(), pump.Exchange.SessionId, now, Payload: payload)));
        }

        if (!string.IsNullOrWhiteSpace(options.CurrentValue.BaseUrl) && pump.Exchange.ReservationId is { } reservation && !pump.Exchange.ReservationSettled)
        {
            Track(EnqueueAsync(new QuotaItem(reservation, ActionFor(outcome), outcome.Tag(), pump.Exchange.SessionId, now)));
        }
    }

    private void Track(Task task)
    {
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
        using var enqueuing = reconciler.Enqueuing(item.Key);
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
                // Jittered, so that the streams that ended during an outage do not all retry at once.
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, attempt) * (0.5 + (Random.Shared.NextDouble() / 2))), time);
            }
        }
    }
}
