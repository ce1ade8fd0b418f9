using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Sidecar.Tests.Common;

/// <summary>Sums a counter of one sidecar's meter (not another test's sidecar) while it is alive.</summary>
internal sealed class InstrumentCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly List<(long Total, TaskCompletionSource Done)> _waiters = [];
    private long _total;

    public InstrumentCounter(SidecarServer sidecar, string instrument)
    {
        var factory = sidecar.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Scope == factory && i.Meter.Name == Sidecar.Telemetry.SidecarMetrics.MeterName && i.Name == instrument)
            {
                l.EnableMeasurementEvents(i);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Add(value));
        _listener.Start();
    }

    public long Total => Interlocked.Read(ref _total);

    /// <summary>Completes once the counter has reached <paramref name="total"/>.</summary>
    public Task WaitForTotalAsync(long total)
    {
        lock (_waiters)
        {
            if (Total >= total)
            {
                return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((total, waiter));
            return waiter.Task;
        }
    }

    private void Add(long value)
    {
        var total = Interlocked.Add(ref _total, value);
        lock (_waiters)
        {
            foreach (var waiter in _waiters.Where(w => w.Total <= total).ToList())
            {
                waiter.Done.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
