using System.Diagnostics.Metrics;
using Sidecar.Streams;

namespace Sidecar.Telemetry;

/// <summary>The sidecar's one <see cref="Meter"/> and its instruments.</summary>
internal sealed class SidecarMetrics
{
    public const string MeterName = "Sidecar";

    private readonly Counter<long> _streamsStarted;
    private readonly Counter<long> _streamsEnded;
    private readonly UpDownCounter<long> _streamsActive;
    private readonly Histogram<double> _streamDuration;
    private readonly Counter<long> _events;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _heartbeats;
    private readonly Counter<long> _upstreamErrors;
    private readonly Counter<long> _clientDisconnects;

    public SidecarMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _streamsStarted = meter.CreateCounter<long>("sidecar.stream.started", "{stream}", "Chat streams the sidecar began pumping.");
        _streamsEnded = meter.CreateCounter<long>("sidecar.stream.ended", "{stream}", "Chat streams that ended, by outcome.");
        _streamsActive = meter.CreateUpDownCounter<long>("sidecar.stream.active", "{stream}", "Chat streams being pumped now.");
        _streamDuration = meter.CreateHistogram("sidecar.stream.duration", "s", "How long chat streams ran.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800] });
        _events = meter.CreateCounter<long>("sidecar.stream.events", "{event}", "SSE events read from the upstream.");
        _bytes = meter.CreateCounter<long>("sidecar.stream.bytes", "By", "SSE bytes read from the upstream.");
        _heartbeats = meter.CreateCounter<long>("sidecar.heartbeat.sent", "{heartbeat}", "Keep-alive comments sent to quiet clients.");
        _upstreamErrors = meter.CreateCounter<long>("sidecar.upstream.errors", "{error}", "Requests the upstream failed before its headers, by error.");
        _clientDisconnects = meter.CreateCounter<long>("sidecar.client.disconnected", "{client}", "Chat clients that left before their answer ended, by phase; their answers go on.");
    }

    public void StreamStarted()
    {
        _streamsStarted.Add(1);
        _streamsActive.Add(1);
    }

    public void StreamEnded(StreamOutcome outcome, TimeSpan duration)
    {
        var outcomeTag = new KeyValuePair<string, object?>("outcome", outcome.Tag());
        _streamsActive.Add(-1);
        _streamsEnded.Add(1, outcomeTag);
        _streamDuration.Record(duration.TotalSeconds, outcomeTag);
    }

    public void EventForwarded(int bytes)
    {
        _events.Add(1);
        _bytes.Add(bytes);
    }

    public void HeartbeatSent() => _heartbeats.Add(1);

    public void UpstreamError(string error) => _upstreamErrors.Add(1, new KeyValuePair<string, object?>("error", error));

    /// <summary>A chat client left early: <c>before_headers</c> (the upstream had not answered yet) or <c>streaming</c>.</summary>
    public void ClientDisconnected(string phase) => _clientDisconnects.Add(1, new KeyValuePair<string, object?>("phase", phase));
}
