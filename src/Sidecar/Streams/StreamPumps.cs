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
    UpstreamBufferPool readBuffers,
    ILogger<StreamPump> logger) : IHostedLifecycleService, IDisposable
{
    private readonly ConcurrentDictionary<StreamPump, byte> _active = new();
    private readonly CancellationTokenSource _drainOver = new(Timeout.InfiniteTimeSpan, time);
    private ITimer? _leaseRenewal;
    private volatile bool _stopping;
    private int _stoppingOnce;

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
        // One span per stream, a child of the request's, outliving it; the request's own flow keeps its span current.
        var requestActivity = System.Diagnostics.Activity.Current;
        var activity = Telemetry.SidecarActivity.Source.StartActivity("chat.stream");
        activity?.SetTag("chat.agent_id", exchange.AgentId);
        activity?.SetTag("chat.session_id", exchange.SessionId);
        activity?.SetTag("chat.message_id", messageId);
        try
        {
            return StartPump(exchange, upstream, upstreamOwner, messageId, activity);
        }
        catch
        {
            activity?.Dispose();
            throw;
        }
        finally
        {
            System.Diagnostics.Activity.Current = requestActivity;
        }
    }

    private StreamPump StartPump(ChatExchange exchange, Stream upstream, IDisposable upstreamOwner, string? messageId, System.Diagnostics.Activity? activity)
    {
        var (ack, inBand, removeInBand) = acks.Open(exchange, messageId);
        var pump = new StreamPump(exchange, upstream, upstreamOwner, messageId, options.CurrentValue, time, logger, metrics, OpenTee(exchange, messageId),
            resumeOptions.CurrentValue.UnavailableSignal, ack, inBand, removeInBand)
        {
            BeforeFailureEnding = BeforeFailureEnding,
            // Only answers whose save is awaited can be known to have failed it, and be repaired.
            Message = ack is not null && !string.IsNullOrWhiteSpace(persistence.CurrentValue.RepairSaveUrl) ? new Persistence.UiMessageBuilder(messageId) : null,
            Activity = activity,
            ReadBuffers = readBuffers,
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
            time.GetUtcNow() + storeOptions.Value.LeaseDuration, System.Diagnostics.Activity.Current?.Id));
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
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stoppingOnce, 1) == 1)
        {
            // A second stop (a host disposed after it stopped) has nothing left to drain.
            return;
        }

        _stopping = true;
        var drain = options.CurrentValue.DrainTimeout;
        Log.Draining(logger, _active.Count, drain.TotalSeconds);
        _drainOver.Token.Register(StopAll);
        _drainOver.CancelAfter(drain);

        // Keep the listeners open a little while not ready: chat POSTs that still arrive get a typed
        // 503 (and go to another replica) instead of a refused connection.
        var delay = options.CurrentValue.ShutdownDelay;
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
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
        if (pump.Activity is { } activity)
        {
            activity.SetTag("chat.outcome", outcome.Tag());
            activity.SetTag("chat.events", pump.State.Events);
            activity.AddEvent(new System.Diagnostics.ActivityEvent("sidecar.outcome", tags: new System.Diagnostics.ActivityTagsCollection { ["outcome"] = outcome.Tag() }));
            if (outcome is not (StreamOutcome.Completed or StreamOutcome.Stopped))
            {
                activity.SetStatus(System.Diagnostics.ActivityStatusCode.Error, outcome.Tag());
            }

            activity.Dispose();
        }

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
