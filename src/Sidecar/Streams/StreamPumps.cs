using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// Starts and tracks the stream pumps, which outlive the requests that started them, and stops
/// them when the host shuts down.
/// </summary>
internal sealed class StreamPumps(
    IOptionsMonitor<StreamOptions> options,
    TimeProvider time,
    SidecarMetrics metrics,
    ILogger<StreamPump> logger) : IHostedService
{
    private readonly ConcurrentDictionary<StreamPump, byte> _active = new();
    private volatile bool _stopping;

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
        var pump = new StreamPump(exchange, upstream, upstreamOwner, messageId, options.CurrentValue, time, logger, metrics);
        _active.TryAdd(pump, 0);
        metrics.StreamStarted(exchange.Kind);
        pump.Start();
        _ = ObserveAsync(pump);
        if (_stopping)
        {
            pump.Stop(StreamOutcome.ShuttingDown);
        }

        return pump;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        foreach (var pump in _active.Keys)
        {
            pump.Stop(StreamOutcome.ShuttingDown);
        }

        Task all = Task.WhenAll(_active.Keys.Select(p => p.Completion));
        await all.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task ObserveAsync(StreamPump pump)
    {
        var outcome = await pump.Completion;
        _active.TryRemove(pump, out _);
        var elapsed = time.GetElapsedTime(pump.StartedAt);
        metrics.StreamEnded(pump.Exchange.Kind, outcome, elapsed);
        Log.StreamEnded(logger, pump.Exchange.SessionId, pump.State.MessageId, outcome.Tag(), pump.State.Events, pump.State.Bytes, elapsed.TotalMilliseconds);

        if (pump.State.ConflictingStartMessageId is not null)
        {
            Log.StartMessageIdMismatch(logger, pump.Exchange.SessionId, pump.State.MessageId);
        }

        Ended?.Invoke(pump, outcome);
    }
}
