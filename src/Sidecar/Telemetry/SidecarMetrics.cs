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
    private readonly Counter<long> _clientsBehind;
    private readonly Counter<long> _connectionsRejected;
    private readonly Counter<long> _storeBatches;
    private readonly Histogram<double> _storeBatchDuration;
    private readonly Counter<long> _storeEvents;
    private readonly Counter<long> _storeLost;
    private readonly Counter<long> _resumes;
    private readonly Counter<long> _stops;
    private readonly Counter<long> _injected;
    private readonly Counter<long> _acks;
    private readonly Histogram<double> _ackDuration;
    private readonly Counter<long> _ackCallbacks;
    private readonly Counter<long> _errorBodies;
    private readonly Counter<long> _quotaSettlements;
    private readonly Counter<long> _quotaMismatches;
    private readonly Counter<long> _quotaStuck;
    private readonly Counter<long> _quotaStuckReleased;
    private readonly Counter<long> _quotaWarnings;
    private readonly Counter<long> _repairs;
    private readonly Histogram<double> _firstEvent;
    private readonly Counter<long> _resumeBytes;
    private long _outboxDepth;
    private double _outboxOldestSeconds;

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
        _storeBatches = meter.CreateCounter<long>("sidecar.store.batches", "{batch}", "Write batches sent to the stream store (one round trip each for Redis).");
        _storeBatchDuration = meter.CreateHistogram("sidecar.store.append.duration", "s", "How long one write batch to the stream store took.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2] });
        _storeEvents = meter.CreateCounter<long>("sidecar.store.events", "{event}", "SSE events written to the stream store.");
        _storeLost = meter.CreateCounter<long>("sidecar.store.lost", "{stream}", "Streams that lost resume because a store write failed or was dropped, by reason.");
        _resumes = meter.CreateCounter<long>("sidecar.resume.requests", "{request}", "Resume requests, by result.");
        _stops = meter.CreateCounter<long>("sidecar.stop.requests", "{request}", "Stop-generating requests, by result.");
        _injected = meter.CreateCounter<long>("sidecar.stream.injected", "{part}", "Parts the sidecar added to streams to end them cleanly, by part and reason.");
        _acks = meter.CreateCounter<long>("sidecar.persistence.acks", "{ack}", "Save acknowledgments awaited for finished answers, by source and result (saved, failed, timeout).");
        _ackDuration = meter.CreateHistogram("sidecar.persistence.ack.duration", "s", "Time from the upstream's finish to the save acknowledgment (or the deadline).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _ackCallbacks = meter.CreateCounter<long>("sidecar.persistence.callbacks", "{request}", "Acknowledgment callbacks received, by result.");
        _errorBodies = meter.CreateCounter<long>("sidecar.upstream.error_bodies", "{response}", "Chat-route error bodies from the upstream, by what was done (normalized, complete, too_large).");
        _firstEvent = meter.CreateHistogram("sidecar.stream.first_event.duration", "s", "Time from the upstream's headers to its first event.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _resumeBytes = meter.CreateCounter<long>("sidecar.resume.bytes", "By", "Bytes replayed and followed by resumes.");
        meter.CreateObservableGauge("sidecar.store.available", () => StoreAvailable?.Invoke() == false ? 0 : 1, "{store}", "Whether the stream store (Redis) is reachable (1) or not (0).");
        meter.CreateObservableGauge("sidecar.upstream.read_buffers.retained", () => ReadBuffersRetained?.Invoke() ?? 0, "{block}", "Upstream read buffers (16 KiB, pinned) kept for reuse, not in use.");
        _quotaSettlements = meter.CreateCounter<long>("sidecar.quota.settlements", "{attempt}", "Quota settlement attempts, by action (confirm, release) and outcome (settled, already_settled, not_found, retry).");
        _quotaMismatches = meter.CreateCounter<long>("sidecar.quota.mismatches", "{reservation}", "Reservations found settled the other way (wanted release, found confirmed: a user paid for a failed answer).");
        _quotaStuck = meter.CreateCounter<long>("sidecar.quota.stuck.found", "{reservation}", "Reservations the sweep found stuck in reserved.");
        _quotaStuckReleased = meter.CreateCounter<long>("sidecar.quota.stuck.released", "{reservation}", "Stuck reservations the sweep queued for release (no live stream).");
        _repairs = meter.CreateCounter<long>("sidecar.persistence.repairs", "{attempt}", "Save repair attempts (a failed save submitted again), by outcome (saved, rejected, retry, unavailable).");
        _quotaWarnings = meter.CreateCounter<long>("sidecar.quota.warnings", "{part}", "data-quota-warning parts sent to clients whose release failed while they were connected.");
        meter.CreateObservableGauge("sidecar.quota.outbox.depth", () => Interlocked.Read(ref _outboxDepth), "{item}", "Settlements waiting in the quota outbox (all replicas).");
        meter.CreateObservableGauge("sidecar.quota.outbox.oldest_age", () => Volatile.Read(ref _outboxOldestSeconds), "s", "Age of the oldest settlement waiting in the quota outbox.");
        _clientDisconnects = meter.CreateCounter<long>("sidecar.client.disconnected", "{client}", "Chat clients that left before their answer ended, by phase; their answers go on.");
        _connectionsRejected = meter.CreateCounter<long>("sidecar.connections.rejected", "{connection}", "Connections to the public port closed at once because Sidecar:Listen:MaxConnections were open.");
        _clientsBehind = meter.CreateCounter<long>("sidecar.client.behind", "{client}", "Live chat clients that fell more than the backlog limit behind and read on from the store.");
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

    /// <summary>Counts the events of one upstream read together (one measurement per read, not per event).</summary>
    public void EventsForwarded(int events, long bytes)
    {
        if (events > 0)
        {
            _events.Add(events);
            _bytes.Add(bytes);
        }
    }

    public void HeartbeatSent() => _heartbeats.Add(1);

    /// <summary>Reports whether the store is reachable (set by the store's writer).</summary>
    public Func<bool>? StoreAvailable { get; set; }

    /// <summary>Reads how many upstream read buffers the pool keeps unused (set by the pool's registration).</summary>
    public Func<int>? ReadBuffersRetained { get; set; }

    public void FirstEvent(TimeSpan elapsed) => _firstEvent.Record(elapsed.TotalSeconds);

    public void ResumeBytes(long bytes) => _resumeBytes.Add(bytes);

    public void UpstreamError(string error) => _upstreamErrors.Add(1, new KeyValuePair<string, object?>("error", error));

    public void StoreBatchWritten(int events, TimeSpan duration)
    {
        _storeBatches.Add(1);
        _storeEvents.Add(events);
        _storeBatchDuration.Record(duration.TotalSeconds);
    }

    /// <summary>A stop request ended: <c>stopped</c>, <c>no_stream</c>, <c>denied</c>, <c>invalid</c>, <c>failed</c>.</summary>
    public void Stop(string result) => _stops.Add(1, new KeyValuePair<string, object?>("result", result));

    public void ProducerLost() => _resumes.Add(1, new KeyValuePair<string, object?>("result", "producer_lost"));

    public void StoreWriteLost(string reason) => _storeLost.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>A resume request ended: <c>replayed</c>, <c>no_stream</c>, <c>denied</c>, <c>invalid</c>, <c>failed</c>.</summary>
    public void Resume(string result) => _resumes.Add(1, new KeyValuePair<string, object?>("result", result));

    /// <summary>The sidecar added a part to end a stream: <c>error</c>, <c>data_finish</c>, <c>abort</c>, <c>done</c>; the reason is an outcome tag.</summary>
    public void PartInjected(string part, string reason) =>
        _injected.Add(1, new KeyValuePair<string, object?>("part", part), new KeyValuePair<string, object?>("reason", reason));

    /// <summary>A held finish was decided: by <paramref name="source"/> (<c>in_band</c>, <c>callback</c>, <c>probe</c>, <c>upstream_error</c>, <c>deadline</c>).</summary>
    public void PersistenceAck(string source, string result, TimeSpan waited)
    {
        KeyValuePair<string, object?>[] tags = [new("source", source), new("result", result)];
        _acks.Add(1, tags);
        _ackDuration.Record(waited.TotalSeconds, tags);
    }

    /// <summary>An acknowledgment callback was answered: <c>delivered</c>, <c>forwarded</c>, <c>unknown</c>, <c>unauthorized</c>, <c>invalid</c>.</summary>
    public void AckCallback(string result) => _ackCallbacks.Add(1, new KeyValuePair<string, object?>("result", result));

    public void ErrorBodyNormalized(string result) => _errorBodies.Add(1, new KeyValuePair<string, object?>("result", result));

    public void QuotaSettled(string action, string outcome) =>
        _quotaSettlements.Add(1, new KeyValuePair<string, object?>("action", action), new KeyValuePair<string, object?>("outcome", outcome));

    public void QuotaMismatch(string wanted, string found) =>
        _quotaMismatches.Add(1, new KeyValuePair<string, object?>("action", wanted), new KeyValuePair<string, object?>("found", found));

    public void QuotaLiveWarning() => _quotaWarnings.Add(1);

    public void Repair(string outcome) => _repairs.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void QuotaStuckFound(int found, int released)
    {
        _quotaStuck.Add(found);
        _quotaStuckReleased.Add(released);
    }

    public void QuotaOutbox(long depth, TimeSpan oldest)
    {
        Interlocked.Exchange(ref _outboxDepth, depth);
        Volatile.Write(ref _outboxOldestSeconds, oldest.TotalSeconds);
    }

    /// <summary>A chat client left early: <c>before_headers</c> (the upstream had not answered yet) or <c>streaming</c>.</summary>
    public void LiveClientBehind() => _clientsBehind.Add(1);

    public void ConnectionRejected() => _connectionsRejected.Add(1);

    public void ClientDisconnected(string phase) => _clientDisconnects.Add(1, new KeyValuePair<string, object?>("phase", phase));
}
