using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Sidecar.Tests.Common;

/// <summary>Every measurement one sidecar's meter records (not another test's sidecar), with its tags.</summary>
internal sealed class MeasurementRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Instrument, double Value, Dictionary<string, string?> Tags)> _measurements = new();

    public MeasurementRecorder(SidecarServer sidecar)
    {
        var factory = sidecar.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == factory && instrument.Meter.Name == Sidecar.Telemetry.SidecarMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, value, tags, _) => Record(i, value, tags));
        _listener.SetMeasurementEventCallback<int>((i, value, tags, _) => Record(i, value, tags));
        _listener.SetMeasurementEventCallback<double>((i, value, tags, _) => Record(i, value, tags));
        _listener.Start();
    }

    /// <summary>The measurements of one instrument, optionally only those with these tag values.</summary>
    public IReadOnlyList<(double Value, Dictionary<string, string?> Tags)> Of(string instrument, params (string Key, string Value)[] tags)
    {
        _listener.RecordObservableInstruments();
        return [.. _measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Key, out var v) && v == t.Value)).Select(m => (m.Value, m.Tags))];
    }

    public double Sum(string instrument, params (string Key, string Value)[] tags) => Of(instrument, tags).Sum(m => m.Value);

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var map = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            map[tag.Key] = tag.Value?.ToString();
        }

        _measurements.Enqueue((instrument.Name, value, map));
    }
}
