using System.IO.Pipelines;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Sidecar.Errors;
using Sidecar.Persistence;
using Sidecar.Sse;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// Owns one upstream event stream: reads it to its end (or to a limit), frames it into events,
/// tracks its state and hands every event to the live client. It never depends on the client:
/// a client that leaves, or reads too slowly, stops receiving, and the pump goes on draining the
/// upstream.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "The stop source has no timer; not disposing it lets Stop race with the end of the run safely.")]
internal sealed class StreamPump
{
    private const int NoCause = -1;

    private static ReadOnlySpan<byte> DataFinish => "data: {\"type\":\"data-finish\",\"data\":null,\"transient\":true}\n\n"u8;

    // Two readers: the live client, and DetachLiveClient draining what the client will not read.
    // One item per upstream read (all the events it framed), and the waiting client continues on
    // the thread that queued it (the read loop; for an ending, an ack's continuation; for a
    // heartbeat, the timer's): a read's events reach the client's connection in one write and one
    // flush without a hop through the thread pool, as a plain proxy's copy loop does. A client
    // whose flush does not complete at once (a slow reader) returns that thread at its await.
    private static readonly UnboundedChannelOptions LiveChannelOptions = new()
    {
        SingleReader = false,
        SingleWriter = false,
        AllowSynchronousContinuations = true,
    };

    private readonly Stream _upstream;
    private readonly IDisposable _upstreamOwner;
    private readonly StreamOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SidecarMetrics _metrics;
    private readonly StreamTee? _tee;
    private readonly AckWaiter? _ack;
    private readonly bool _inBandAcks;
    private readonly bool _removeInBandAck;
    private readonly ResumeUnavailableSignal _resumeSignal;

    // Emission (store and live client, in one order) happens on the read loop and, for a held
    // finish, when its acknowledgment or deadline arrives: one lock keeps the order.
    private readonly Lock _emitGate = new();
    private readonly Lazy<Task<StreamOutcome>> _completion;
    private List<SseEvent>? _held;
    private bool _ended;
    private long _emitted;
    private bool _stoppedEnding;
    private PersistenceAck? _ackResult;
    private bool _ackTimedOut;
    private bool _resumeLostUnsaid;
    private bool _teeEnded;

    // What the stream's ending already made of it for its client, whatever the upstream does
    // after (it may reset, stall or overflow while it is drained): Completed once [DONE] went out
    // after finish with no failing error, EndedWithoutFinish for a [DONE] before any of them.
    private StreamOutcome? _settled;
    private Action? _liveClientTooSlow;

    // Guards the call of _liveClientTooSlow against its clearing by the live client.
    private readonly Lock _liveClientGate = new();
    private bool _liveCut;
    private bool _liveBehind;
    private readonly Channel<LiveEvents> _live = Channel.CreateUnbounded<LiveEvents>(LiveChannelOptions);

    // The live client's events emitted since the last hand-over (under the emission lock).
    private readonly List<SseEvent> _liveQueued = [];

    // The stop source has no timer, so it is never disposed: Stop may race with the end of the run.
    private readonly CancellationTokenSource _stop = new();
    private int _cause = NoCause;
    private long _liveBacklogBytes;
    private volatile bool _liveDetached;

    public StreamPump(
        ChatExchange exchange,
        Stream upstream,
        IDisposable upstreamOwner,
        string? messageId,
        StreamOptions options,
        TimeProvider time,
        ILogger logger,
        SidecarMetrics metrics,
        StreamTee? tee,
        ResumeUnavailableSignal resumeSignal = ResumeUnavailableSignal.ErrorPart,
        AckWaiter? ack = null,
        bool inBandAcks = false,
        bool removeInBandAck = true)
    {
        Exchange = exchange;
        _tee = tee;
        _ack = ack;
        _inBandAcks = inBandAcks && ack is not null;
        _removeInBandAck = removeInBandAck;
        _resumeSignal = resumeSignal;
        _upstream = upstream;
        _upstreamOwner = upstreamOwner;
        _options = options;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        State = new StreamState(messageId);
        StartedAt = time.GetTimestamp();
        if (_resumeSignal == ResumeUnavailableSignal.DataPart)
        {
            // Said after the next upstream event once the message has started (a part before
            // `start` would have no message to belong to).
            tee?.OnLost(() => Volatile.Write(ref _resumeLostUnsaid, true));
        }

        _completion = new Lazy<Task<StreamOutcome>>(RunAsync);
    }

    /// <summary>Starts pumping, once everything the pump is given (hooks, the message builder) is set.</summary>
    public void Start() => _ = _completion.Value;

    public ChatExchange Exchange { get; }

    /// <summary>
    /// Called when the stream is about to end with an injected error while its live client is still
    /// connected; a part it returns goes to that client (not stored) just before the error part.
    /// </summary>
    public Func<StreamPump, StreamOutcome, Task<byte[]?>>? BeforeFailureEnding { get; set; }

    /// <summary>The stream's span (null when nobody listens): events for acks and injected parts.</summary>
    public System.Diagnostics.Activity? Activity { get; init; }

    /// <summary>Rebuilds the answer as a <c>UIMessage</c> from what is emitted (for save repair), or null.</summary>
    public Persistence.UiMessageBuilder? Message { get; init; }

    /// <summary>Where the upstream reads take their buffers (null: the shared array pool).</summary>
    public System.Buffers.MemoryPool<byte>? ReadBuffers { get; init; }

    /// <summary>The wait for this answer's save acknowledgment, or null when none is awaited.</summary>
    public AckWaiter? Ack => _ack;

    /// <summary>The stream's side of the store writer, or null when it is not stored.</summary>
    public StreamTee? Tee => _tee;

    public StreamState State { get; }

    public long StartedAt { get; }

    /// <summary>Completes with the stream's outcome once the upstream is done with and released.</summary>
    public Task<StreamOutcome> Completion => _completion.Value;

    /// <summary>
    /// The events for the live client, in order, in groups (one per upstream read, or per part the
    /// sidecar adds); completed when the pump ends, after <c>[DONE]</c>, or when the client is detached.
    /// </summary>
    public ChannelReader<LiveEvents> Live => _live.Reader;

    /// <summary>Whether the pump cut the live client off because it fell too far behind and the store could not serve it.</summary>
    public bool IsLiveCut => Volatile.Read(ref _liveCut);

    /// <summary>
    /// Whether the live client fell too far behind and reads on from the store: the live feed
    /// ends, and nothing read from it after this became true may be written.
    /// </summary>
    public bool IsLiveBehind => Volatile.Read(ref _liveBehind);

    /// <summary>Called (once) when the live client falls more than the backlog limit behind; cleared when its request ends.</summary>
    public Action? LiveClientTooSlow
    {
        get
        {
            lock (_liveClientGate)
            {
                return _liveClientTooSlow;
            }
        }

        set
        {
            // Under the gate the pump calls it under: once cleared (the request about to end), it
            // is not running and will not run, so it never touches a request that has ended.
            lock (_liveClientGate)
            {
                _liveClientTooSlow = value;
            }
        }
    }

    /// <summary>Queues a heartbeat for the live client (from the client's heartbeat timer).</summary>
    public void EnqueueHeartbeat()
    {
        if (!_liveDetached)
        {
            _live.Writer.TryWrite(new LiveEvents(SseEvent.Heartbeat));
        }
    }

    /// <summary>The live client wrote <paramref name="bytes"/> of its backlog to its connection.</summary>
    public void LiveBytesWritten(int bytes) => Interlocked.Add(ref _liveBacklogBytes, -bytes);

    /// <summary>The live client has gone: stop queueing for it; the pump goes on draining the upstream.</summary>
    public void DetachLiveClient()
    {
        _liveDetached = true;
        _live.Writer.TryComplete();
        while (_live.Reader.TryRead(out _))
        {
        }
    }

    /// <summary>Stops reading the upstream, recording why (unless the stream already ended for another reason).</summary>
    public void Stop(StreamOutcome reason)
    {
        SetCause(reason);
        _stop.Cancel();
        if (reason == StreamOutcome.ShuttingDown)
        {
            // Past the drain deadline nothing waits longer for a save: a held finish is decided now.
            _ack?.Expire();
        }
    }

    private void SetCause(StreamOutcome cause) => Interlocked.CompareExchange(ref _cause, (int)cause, NoCause);

    private async Task<StreamOutcome> RunAsync()
    {
        // Yield so the caller (YARP's response transform) is not held by the first reads.
        await Task.Yield();
        if (_tee is { Registered.IsCompleted: false } tee)
        {
            // The client gets nothing before the stream is registered in the store (its headers
            // wait for that, bounded), so nothing is read before then either: the upstream's
            // events wait in its connection, as behind a plain proxy, not in this process. Read at
            // once, a whole unpaced answer sat in the live queue through the store's round trip,
            // long enough under load to be copied by the garbage collector (docs/benchmarks.md).
            // Stopped meanwhile, the read below ends at once with the stop's cause; forced to
            // yield, so that the ending never runs inside the caller of Stop.
            await tee.WaitRegisteredAsync(_stop.Token).ConfigureAwait(ConfigureAwaitOptions.ForceYielding | ConfigureAwaitOptions.SuppressThrowing);
        }

        using var idle = new IdleWatchdog(_options.UpstreamIdleTimeout, _time);
        using var deadline = new CancellationTokenSource(_options.MaxDuration, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(idle.Token, deadline.Token, _stop.Token);
        // The first cause wins: a deadline that fires while an idle cancellation unwinds does not rename it.
        using var onIdle = idle.Token.Register(static s => ((StreamPump)s!).SetCause(StreamOutcome.UpstreamIdle), this);
        using var onDeadline = deadline.Token.Register(static s => ((StreamPump)s!).SetCause(StreamOutcome.MaxDurationExceeded), this);
        var framer = new SseEventReader(_options.MaxEventBytes);
        var pipe = PipeReader.Create(_upstream, new StreamPipeReaderOptions(ReadBuffers, bufferSize: ReadBuffers?.MaxBufferSize ?? UpstreamBufferPool.DefaultBlockSize, minimumReadSize: 4 * 1024, leaveOpen: true));
        var outcome = StreamOutcome.UpstreamFailed;
        try
        {
            outcome = await ReadToEndAsync(pipe, framer, idle, linked.Token);
        }
        catch (Exception) when (linked.IsCancellationRequested)
        {
            // A read cancelled by one of our own tokens may surface as any exception type. The
            // registrations above have usually named the cause already; the first one stands.
            SetCause(_stop.IsCancellationRequested ? StreamOutcome.ShuttingDown
                : deadline.IsCancellationRequested ? StreamOutcome.MaxDurationExceeded
                : StreamOutcome.UpstreamIdle);
            outcome = (StreamOutcome)Volatile.Read(ref _cause);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or ObjectDisposedException or OperationCanceledException)
        {
            Log.UpstreamReadFailed(_logger, Exchange.SessionId, State.MessageId, ex.GetType().Name + ": " + ex.Message + " / " + ex.InnerException?.Message);
            outcome = StreamOutcome.UpstreamFailed;
        }
        catch (Exception ex)
        {
            // A bug, not a network failure: the stream still ends, and the process goes on.
            Log.PumpFailed(_logger, Exchange.SessionId, State.MessageId, ex);
            outcome = StreamOutcome.UpstreamFailed;
        }
        finally
        {
            await ReleaseAsync(pipe);
        }

        outcome = await EndAsync(outcome);
        _live.Writer.TryComplete();

        // A normal (or stopped) ending is "no stream" to a later resume; any other is replayed with its ending.
        if (!_teeEnded)
        {
            _tee?.End(outcome is StreamOutcome.Completed or StreamOutcome.Stopped ? StoredStreamState.Completed : StoredStreamState.Failed);
        }

        return outcome;
    }

    /// <summary>
    /// Ends the stream for the live client and every resumer, whatever happened upstream: waits for
    /// a held <c>finish</c>'s acknowledgment (bounded by its deadline), then adds what the ending
    /// needs so that the client always ends in a clear state: <c>data-finish</c> for an open
    /// artifact, the typed <c>error</c> part (never a second one after the upstream's own), and
    /// <c>[DONE]</c>. Returns the final outcome.
    /// </summary>
    private async Task<StreamOutcome> EndAsync(StreamOutcome outcome)
    {
        if (_ack is not null)
        {
            // Whatever ended the read (the upstream, a stop, shutdown), a held finish waits for its
            // acknowledgment: the answer is whole, only its save is in question.
            bool holding;
            lock (_emitGate)
            {
                holding = _held is not null;
            }

            if (holding)
            {
                await ResolveHeldAsync();
            }
        }

        // A failed answer whose client is still there: a hook (the quota ledger's live release) may
        // have a transient part for it, said before the error part (the client stops reading there).
        byte[]? beforeError = null;
        if (BeforeFailureEnding is { } hook && !_liveDetached && !State.FinishSeen && !State.ErrorSeen && !State.DoneSeen
            && outcome != StreamOutcome.Stopped && outcome.InjectedError() is not null)
        {
            try
            {
                beforeError = await hook(this, outcome);
            }
            catch (Exception ex)
            {
                Log.EndedHandlerFailed(_logger, ex);
            }
        }

        lock (_emitGate)
        {
            if (_ackResult is { Status: AckStatus.Failed })
            {
                outcome = StreamOutcome.PersistenceFailed;
            }
            else if (_ackTimedOut)
            {
                outcome = StreamOutcome.PersistenceUnacknowledged;
            }
            else if (_settled is { } settled)
            {
                // The client had its ending before the upstream's own end: that is the outcome.
                outcome = settled;
            }
            else if (_ackResult is { Status: AckStatus.Saved } && outcome is StreamOutcome.Stopped or StreamOutcome.ShuttingDown)
            {
                // Stopped after the whole answer was there and saved: it completed.
                outcome = StreamOutcome.Completed;
            }

            if (!_ended)
            {
                EndStream(outcome, beforeError);
            }

            HandOverLive();
            return outcome;
        }
    }

    /// <summary>The ending's own parts (under the emission lock): see <see cref="EndAsync"/>.</summary>
    private void EndStream(StreamOutcome outcome, byte[]? beforeError)
    {
        if (outcome == StreamOutcome.Stopped)
        {
            // Stopped by its owner: a later resume has nothing to add (204).
            _stoppedEnding = true;
            if (!State.FinishSeen && !State.ErrorSeen)
            {
                if (State.ArtifactOpen)
                {
                    // The client's artifact leaves "streaming" only on data-finish.
                    EmitOwn(DataFinish.ToArray(), "stopped");
                }

                EmitOwn("data: {\"type\":\"abort\"}\n\n"u8.ToArray(), "stopped");
            }
        }
        else if (!State.FinishSeen && !State.ErrorSeen && outcome.InjectedError() is { } error)
        {
            if (State.ArtifactOpen)
            {
                // The client's artifact leaves "streaming" only on data-finish.
                EmitOwn(DataFinish.ToArray(), outcome.Tag());
            }

            if (beforeError is not null)
            {
                PublishSidecarPart(beforeError);
            }

            EmitOwn(TerminalParts.Error(SidecarErrors.Create(error, _time, Exchange.RequestId, Exchange.SessionId, State.MessageId, outcome.Tag())), outcome.Tag());
        }

        EmitOwn(TerminalParts.Done.ToArray(), outcome.Tag());
    }

    private async Task<StreamOutcome> ReadToEndAsync(PipeReader pipe, SseEventReader framer, IdleWatchdog idle, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await pipe.ReadAsync(cancellationToken);
            idle.Touch();
            var buffer = result.Buffer;
            // Counted here, not from State: the sidecar's own parts (an ending decided during this
            // read) are observed too, but they were not read from the upstream.
            var (eventsRead, bytesRead) = (0, 0L);
            SseReadStatus status;
            try
            {
                while ((status = framer.TryRead(ref buffer, result.IsCompleted, out var bytes)) is SseReadStatus.Event or SseReadStatus.Fragment)
                {
                    if (State.Bytes + bytes.Length > _options.MaxStreamBytes)
                    {
                        pipe.AdvanceTo(buffer.Start);
                        return StreamOutcome.StreamTooLarge;
                    }

                    var evt = SseEvent.Parse(bytes, terminated: status == SseReadStatus.Event);
                    if (!evt.IsTerminated)
                    {
                        if (!State.FinishSeen)
                        {
                            // The body ended inside an event of an unfinished answer: the half event is
                            // not the client's (it would fail to parse); the ending says what happened.
                            Log.UpstreamEndedInsideEvent(_logger, Exchange.SessionId, State.MessageId, evt.Raw.Length);
                            continue;
                        }

                        // A last event without its blank line (e.g. "data: [DONE]"): terminated, so that
                        // an id line or a part after it cannot run into it.
                        evt = SseEvent.Terminate(evt);
                    }

                    State.Observe(evt);
                    eventsRead++;
                    bytesRead += evt.Raw.Length;
                    if (State.Events == 1)
                    {
                        _metrics.FirstEvent(_time.GetElapsedTime(StartedAt));
                    }

                    Forward(evt);
                }
            }
            finally
            {
                lock (_emitGate)
                {
                    // The read's events go to the client together (also when the read ends the stream).
                    HandOverLive();
                }

                _metrics.EventsForwarded(eventsRead, bytesRead);
            }

            if (status == SseReadStatus.TooLarge)
            {
                pipe.AdvanceTo(buffer.Start);
                return StreamOutcome.EventTooLarge;
            }

            pipe.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return State.FailedByErrorPart ? StreamOutcome.UpstreamErrorPart
                    : State.FinishSeen ? StreamOutcome.Completed
                    : StreamOutcome.EndedWithoutFinish;
            }
        }
    }

    /// <summary>An upstream event: out at once, or held while the answer's save is awaited.</summary>
    private void Forward(SseEvent evt)
    {
        lock (_emitGate)
        {
            if (_ended)
            {
                // The answer ended at [DONE] (ours or the upstream's): the rest is drained, not sent.
                return;
            }

            if (_held is not null)
            {
                Hold(evt);
                return;
            }

            if (evt.Part.Type == UiPartType.Finish && _ack is not null && !State.ErrorSeenBeforeFinish)
            {
                // The client must not see success before the save is known: finish waits.
                _held = [evt];
                _ack.Start();
                _ = ResolveHeldAsync();
                return;
            }

            if (evt.Part.Type == UiPartType.DataPersistence && _inBandAcks)
            {
                // An in-band ack before finish: kept for when finish comes.
                NoteInBandAck(evt);
                if (_removeInBandAck)
                {
                    return;
                }
            }

            if (evt.Part.Type == UiPartType.Done && !State.FinishSeen && !State.ErrorSeen && !State.AbortSeen)
            {
                // [DONE] with no finish, error or abort before it: the client skips [DONE] and
                // would end "ready" on half an answer. Ended as a body that ends before finish is.
                _settled = StreamOutcome.EndedWithoutFinish;
                EndStream(StreamOutcome.EndedWithoutFinish, null);
                return;
            }

            Emit(evt);
        }
    }

    /// <summary>An event after a held finish: an in-band ack or the upstream's own error decides; the rest waits.</summary>
    private void Hold(SseEvent evt)
    {
        switch (evt.Part.Type)
        {
            case UiPartType.DataPersistence when _inBandAcks:
                if (!_removeInBandAck)
                {
                    // Held before it decides: the decision lets the held parts out, this one with them.
                    _held!.Add(evt);
                }

                NoteInBandAck(evt);
                return;
            case UiPartType.Error when !UiPart.IsResumeError(evt.Data):
                // The upstream's own error after finish (its persistence error): a failed save, said
                // by the upstream. Its resume error says nothing of the save: it waits with finish.
                _held!.Add(evt);
                var failed = new PersistenceAck(AckStatus.Failed, "upstream_error");
                if (_ack!.TrySet(failed))
                {
                    // Decided here, in stream order, not when the continuation runs.
                    Decide(failed);
                }

                return;
            default:
                _held!.Add(evt);
                return;
        }
    }

    private void NoteInBandAck(SseEvent evt)
    {
        if (PersistenceAck.ParseInBand(evt.Data.Span, out var messageId) is { } ack && (messageId is null || messageId == State.MessageId))
        {
            if (_ack!.TrySet(ack) && _held is not null)
            {
                // Decided here, in stream order: what the upstream sends next goes out after it.
                Decide(ack);
            }
        }
        else
        {
            Log.InBandAckInvalid(_logger, Exchange.SessionId, State.MessageId);
        }
    }

    /// <summary>Waits for the held finish's acknowledgment (or its deadline) and lets the held parts out accordingly.</summary>
    private async Task ResolveHeldAsync()
    {
        var ack = await _ack!.Result.ConfigureAwait(false);
        lock (_emitGate)
        {
            Decide(ack);
            HandOverLive();
        }
    }

    /// <summary>Lets a held finish out as the acknowledgment says (under the emission lock); a wait already decided stays so.</summary>
    private void Decide(PersistenceAck? ack)
    {
        if (_held is null)
        {
            return;
        }

        _ackResult = ack;
        _ackTimedOut = ack is null;
        var result = ack is null ? "timeout" : ack.Status == AckStatus.Saved ? "saved" : "failed";
        _metrics.PersistenceAck(ack?.Source ?? "deadline", result, _time.GetElapsedTime(_ack!.StartedAt));
        Activity?.AddEvent(new System.Diagnostics.ActivityEvent("sidecar.ack", tags: new System.Diagnostics.ActivityTagsCollection { ["source"] = ack?.Source ?? "deadline", ["result"] = result }));
        if (ack is not { Status: AckStatus.Saved })
        {
            Log.PersistenceNotSaved(_logger, Exchange.SessionId, State.MessageId, ack?.Source ?? "deadline", ack?.Error);
        }

        ReleaseHeld(saved: ack is { Status: AckStatus.Saved });
    }

    /// <summary>
    /// Lets held parts out. Saved: unchanged. Otherwise: up to the upstream's own error part if it
    /// sent one (only the first error counts), else the contract's persistence error, then [DONE].
    /// The persistence error goes where the service puts its own, before its resume error: the
    /// client reads only the first error, and the failed save is what it must hear of.
    /// </summary>
    private void ReleaseHeld(bool saved)
    {
        var held = _held!;
        _held = null;
        foreach (var evt in held)
        {
            if (_ended || (!saved && (evt.Part.Type == UiPartType.Done || (evt.Part.Type == UiPartType.Error && UiPart.IsResumeError(evt.Data)))))
            {
                break;
            }

            Emit(evt);
            if (!saved && evt.Part.Type == UiPartType.Error)
            {
                EmitOwn(TerminalParts.Done.ToArray(), "persistence");
                return;
            }
        }

        if (!saved && !_ended)
        {
            EmitOwn(TerminalParts.Error(SidecarErrors.Create(SidecarError.PersistenceFailed, _time, Exchange.RequestId, Exchange.SessionId, State.MessageId,
                _ackTimedOut ? StreamOutcome.PersistenceUnacknowledged.Tag() : StreamOutcome.PersistenceFailed.Tag())), "persistence");
            EmitOwn(TerminalParts.Done.ToArray(), "persistence");
        }
    }

    /// <summary>A part the sidecar adds to the stream itself (an ending): stored and sent like upstream events.</summary>
    private void EmitOwn(byte[] raw, string reason)
    {
        var evt = SseEvent.Parse(new System.Buffers.ReadOnlySequence<byte>(raw), terminated: true);
        State.Observe(evt);
        var part = evt.Part.Type switch
        {
            UiPartType.Done => "done",
            UiPartType.Error => "error",
            UiPartType.Abort => "abort",
            UiPartType.DataFinish => "data_finish",
            _ => "other",
        };
        _metrics.PartInjected(part, reason);
        Activity?.AddEvent(new System.Diagnostics.ActivityEvent("sidecar.injected", tags: new System.Diagnostics.ActivityTagsCollection { ["part"] = part, ["reason"] = reason }));
        Emit(evt);
    }

    /// <summary>Numbers an event, stores it and hands it to the live client, in that order; [DONE] ends both.</summary>
    private void Emit(SseEvent evt)
    {
        evt.Sequence = _emitted++;
        Message?.Observe(evt);
        TeeEvent(evt);
        Publish(evt);
        if (evt.Part.Type == UiPartType.Done)
        {
            _ended = true;
            if (State.FinishSeen && !State.FailedByErrorPart)
            {
                _settled ??= StreamOutcome.Completed;
            }
        }
    }

    private void Publish(SseEvent evt)
    {
        if (_liveDetached)
        {
            return;
        }

        if (Interlocked.Add(ref _liveBacklogBytes, evt.Raw.Length) > _options.MaxClientBacklogBytes)
        {
            // The client reads slower than the upstream writes: stop buffering for it. While the
            // store holds the whole stream, the client reads on from there at its own pace.
            if (_tee is { IsLost: false })
            {
                Log.LiveClientBehind(_logger, Exchange.SessionId, State.MessageId, _options.MaxClientBacklogBytes);
                _metrics.LiveClientBehind();
                // Set before the drain: the live client checks it after each read, so that it never
                // writes an event past one the drain took.
                Volatile.Write(ref _liveBehind, true);
                DetachLiveClient();
                return;
            }

            Log.LiveClientTooSlow(_logger, Exchange.SessionId, State.MessageId, _options.MaxClientBacklogBytes);
            Volatile.Write(ref _liveCut, true);
            DetachLiveClient();
            lock (_liveClientGate)
            {
                _liveClientTooSlow?.Invoke();
                _liveClientTooSlow = null;
            }

            return;
        }

        if (evt.Part.Type == UiPartType.Done && _tee is { IsLost: true } && !State.ErrorSeen
            && _resumeSignal is ResumeUnavailableSignal.ErrorPart or ResumeUnavailableSignal.FailFast)
        {
            // As the service does when it cannot register resume: an error part after finish.
            PublishSidecarPart(TerminalParts.Error(SidecarErrors.Create(
                SidecarError.ResumeNotEnabled, _time, Exchange.RequestId, Exchange.SessionId, State.MessageId)));
        }

        _liveQueued.Add(evt);
        if (State.StartSeen && evt.Part.Type != UiPartType.Done && Volatile.Read(ref _resumeLostUnsaid))
        {
            Volatile.Write(ref _resumeLostUnsaid, false);
            PublishSidecarPart(ResumeUnavailablePart());
        }

        if (evt.Part.Type == UiPartType.Done)
        {
            // The answer is whole: the client's response ends here, whatever the upstream does next.
            HandOverLive();
            _liveDetached = true;
            _live.Writer.TryComplete();
        }
    }

    /// <summary>
    /// Stores an event. At [DONE] the stored stream ends: resumers then end where the live client
    /// ended, and whatever the upstream does afterwards is not part of the answer.
    /// </summary>
    private void TeeEvent(SseEvent evt)
    {
        if (_tee is null || _teeEnded)
        {
            return;
        }

        _tee.Append(evt.Sequence, evt.Raw);
        if (evt.Part.Type == UiPartType.Done)
        {
            _teeEnded = true;
            // Whole (finish, no error) or stopped by its owner: a later resume has nothing to add.
            _tee.End((State.FinishSeen && !State.ErrorSeen) || _stoppedEnding ? StoredStreamState.Completed : StoredStreamState.Failed);
        }
    }

    /// <summary>A part the sidecar adds for the live client only: not stored, no event id.</summary>
    private void PublishSidecarPart(byte[] raw)
    {
        if (!_liveDetached)
        {
            _liveQueued.Add(SseEvent.Parse(new System.Buffers.ReadOnlySequence<byte>(raw), terminated: true));
        }
    }

    /// <summary>Hands what was emitted for the live client since the last call over to it (under the emission lock).</summary>
    private void HandOverLive()
    {
        if (_liveQueued.Count == 0)
        {
            return;
        }

        if (!_liveDetached)
        {
            _live.Writer.TryWrite(_liveQueued.Count == 1 ? new LiveEvents(_liveQueued[0]) : new LiveEvents([.. _liveQueued]));
        }

        _liveQueued.Clear();
    }

    private byte[] ResumeUnavailablePart() => System.Text.Encoding.UTF8.GetBytes(
        "data: {\"type\":\"data-resume-unavailable\",\"data\":{\"messageId\":" + System.Text.Json.JsonSerializer.Serialize(State.MessageId ?? string.Empty, Errors.ErrorJsonContext.Relaxed.String) + "},\"transient\":true}\n\n");

    /// <summary>Releases the upstream connection; each step runs even if an earlier one throws.</summary>
    private async Task ReleaseAsync(PipeReader pipe)
    {
        try
        {
            await pipe.CompleteAsync();
        }
        catch (Exception ex)
        {
            Log.UpstreamReleaseFailed(_logger, Exchange.SessionId, State.MessageId, ex.GetType().Name);
        }

        try
        {
            await _upstream.DisposeAsync();
        }
        catch (Exception ex)
        {
            Log.UpstreamReleaseFailed(_logger, Exchange.SessionId, State.MessageId, ex.GetType().Name);
        }

        try
        {
            _upstreamOwner.Dispose();
        }
        catch (Exception ex)
        {
            Log.UpstreamReleaseFailed(_logger, Exchange.SessionId, State.MessageId, ex.GetType().Name);
        }
    }
}

/// <summary>The events of one hand-over to the live client: one event (no array) or several.</summary>
internal readonly struct LiveEvents
{
    private readonly SseEvent? _one;
    private readonly SseEvent[]? _many;

    public LiveEvents(SseEvent one) => _one = one;

    public LiveEvents(SseEvent[] many) => _many = many;

    public int Count => _many?.Length ?? 1;

    public SseEvent this[int index] => _many is null ? _one! : _many[index];
}
