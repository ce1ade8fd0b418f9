using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// Starts and tracks the stream pumps, which outlive the requests that started them, and drains
/// them when the host shuts down: from the moment shutdown begins the sidecar reports not ready,
/// running streams may go on for <see cref="StreamOptions.DrainTimeout"/>, then the rest are cut off.
/// </summary>
internal sealed class StreamPumps(
    IOptionsMonitor<StreamOptions> options,
    IOptions<StreamStoreOptions> storeOptions,
    IOptionsMonitor<ResumeOptions> resumeOptions,
    StoreWriter storeWriter,
    Persistence.PersistenceAcks acks,
    IOptionsMonitor<Persistence.PersistenceOptions> persistence,
    IStreamStore store,
    SidecarReplica replica,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<StreamPump> logger) : IHostedLifecycleService, IDisposable
{
    private readonly ConcurrentDictionary<StreamPump, byte> _active = new();
    private readonly CancellationTokenSource _drainOver = new(Timeout.InfiniteTimeSpan, time);
    private ITimer? _leaseRenewal;
    private volatile bool _stopping;

    /// <summary>Given to every new pump (see <see cref="StreamPump.BeforeFailureEnding"/>).</summary>
    public Func<StreamPump, StreamOutcome, Task<byte[]?>>? BeforeFailureEnding { get; set; }

    /// <summary>Raised once per pump when its stream has ended and the upstream is released.</summary>
    public event Action<StreamPump, StreamOutcome>? Ended;

    public int ActiveCount => _active.Count;

    /// <summary>The pumps running now.</summary>
    public IEnumerable<StreamPump> Active => _active.Keys;

    /// <summary>Whether the host has begun shutting down.</summary>
    public bool IsStopping => _stopping;

    /// <summary>Takes ownership of an upstream event stream and starts pumping it.</summary>
    public StreamPump Start(ChatExchange exchange, Stream upstream, IDisposable upstreamOwner, string? messageId)
    {
        var (ack, inBand, removeInBand) = acks.Open(exchange, messageId);
        var pump = new StreamPump(exchange, upstream, upstreamOwner, messageId, options.CurrentValue, time, logger, metrics, OpenTee(exchange, messageId),
            resumeOptions.CurrentValue.UnavailableSignal, ack, inBand, removeInBand)
        {
            BeforeFailureEnding = BeforeFailureEnding,
            // Only answers whose save is awaited can be known to have failed it, and be repaired.
            Message = ack is not null && !string.IsNullOrWhiteSpace(persistence.CurrentValue.RepairSaveUrl) ? new Persistence.UiMessageBuilder(messageId) : null,
        };
        pump.Start();
        _active.TryAdd(pump, 0);
        metrics.StreamStarted();
        _ = ObserveAsync(pump);
        if (_drainOver.IsCancellationRequested)
        {
            pump.Stop(StreamOutcome.ShuttingDown);
        }

        return pump;
    }

    /// <summary>Registers the stream in the store, or returns null when it cannot be resumed (no valid message id).</summary>
    private StreamTee? OpenTee(ChatExchange exchange, string? messageId)
    {
        if (!storeOptions.Value.Enabled)
        {
            return null;
        }

        if (!StreamIds.IsValid(messageId) || !StreamIds.IsValid(exchange.SessionId) || !StreamIds.IsValid(exchange.AgentId))
        {
            Log.StreamNotTeed(logger, exchange.SessionId);
            return null;
        }

        return storeWriter.Open(new StreamRegistration(
            messageId!, exchange.SessionId, exchange.AgentId, exchange.OwnerHash, replica.Id,
            time.GetUtcNow() + storeOptions.Value.LeaseDuration));
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Each producing stream's lease is renewed three times per lease: resumers on any replica
        // take a lease that lapses for a dead producer.
        var period = storeOptions.Value.LeaseDuration / 3;
        _leaseRenewal = time.CreateTimer(static s => ((StreamPumps)s!).RenewLeases(), this, period, period);
        store.StopRequested += TryStop;
        return Task.CompletedTask;
    }

    /// <summary>Stops the stream of <paramref name="messageId"/> if this replica produces it.</summary>
    private void TryStop(string messageId)
    {
        foreach (var pump in _active.Keys)
        {
            if (pump.State.MessageId == messageId)
            {
                Log.StreamStopRequested(logger, pump.Exchange.SessionId, messageId);
                pump.Stop(StreamOutcome.Stopped);
            }
        }
    }

    private void RenewLeases()
    {
        var until = time.GetUtcNow() + storeOptions.Value.LeaseDuration;
        foreach (var pump in _active.Keys)
        {
            pump.Tee?.RenewLease(until);
        }
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs before any service stops (Kestrel among them): turn not ready, start the drain clock.</summary>
    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        var drain = options.CurrentValue.DrainTimeout;
        Log.Draining(logger, _active.Count, drain.TotalSeconds);
        _drainOver.Token.Register(StopAll);
        _drainOver.CancelAfter(drain);
        return Task.CompletedTask;
    }

    /// <summary>Waits for the running streams to end, by themselves or at the drain deadline.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        using var onHostDeadline = cancellationToken.Register(StopAll);
        while (!_active.IsEmpty)
        {
            Task all = Task.WhenAll(_active.Keys.Select(p => p.Completion));
            await all.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _leaseRenewal?.Dispose();
        _drainOver.Dispose();
    }

    private void StopAll()
    {
        foreach (var pump in _active.Keys)
        {
            pump.Stop(StreamOutcome.ShuttingDown);
        }
    }

    private async Task ObserveAsync(StreamPump pump)
    {
        var outcome = await pump.Completion;
        _active.TryRemove(pump, out _);
        if (pump.Ack is { } ack)
        {
            acks.Close(ack);
        }

        var elapsed = time.GetElapsedTime(pump.StartedAt);
        metrics.StreamEnded(outcome, elapsed);
        Log.StreamEnded(logger, pump.Exchange.SessionId, pump.State.MessageId, outcome.Tag(), pump.State.Events, pump.State.Bytes, elapsed.TotalMilliseconds);
        if (pump.State.ConflictingStartMessageId is not null)
        {
            Log.StartMessageIdMismatch(logger, pump.Exchange.SessionId, pump.State.MessageId);
        }

        try
        {
            Ended?.Invoke(pump, outcome);
        }
        catch (Exception ex)
        {
            Log.EndedHandlerFailed(logger, ex);
        }
    }
}
