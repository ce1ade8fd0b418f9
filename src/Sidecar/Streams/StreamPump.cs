using System.IO.Pipelines;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Sidecar.Sse;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>
/// Owns one upstream event stream: reads it to its end (or to a limit), frames it into events,
/// tracks its state and hands every event to the live client. It never depends on the client:
/// a client that leaves stops receiving, and the pump goes on draining the upstream.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "The stop source is disposed when the pump's run ends.")]
internal sealed class StreamPump
{
    private static readonly UnboundedChannelOptions LiveChannelOptions = new()
    {
        SingleReader = true,
        SingleWriter = false,
        AllowSynchronousContinuations = false,
    };

    private readonly Stream _upstream;
    private readonly IDisposable _upstreamOwner;
    private readonly StreamOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SidecarMetrics _metrics;
    private readonly Channel<SseEvent> _live = Channel.CreateUnbounded<SseEvent>(LiveChannelOptions);
    private readonly CancellationTokenSource _stop = new();
    private StreamOutcome _stopReason = StreamOutcome.ShuttingDown;
    private volatile bool _liveDetached;

    public StreamPump(
        ChatExchange exchange,
        Stream upstream,
        IDisposable upstreamOwner,
        string? messageId,
        StreamOptions options,
        TimeProvider time,
        ILogger logger,
        SidecarMetrics metrics)
    {
        Exchange = exchange;
        _upstream = upstream;
        _upstreamOwner = upstreamOwner;
        _options = options;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        State = new StreamState(messageId);
        StartedAt = time.GetTimestamp();
    }

    public ChatExchange Exchange { get; }

    public StreamState State { get; }

    public long StartedAt { get; }

    /// <summary>Completes with the stream's outcome once the upstream is done with and released.</summary>
    public Task<StreamOutcome> Completion { get; private set; } = Task.FromResult(StreamOutcome.ShuttingDown);

    /// <summary>The events for the live client, in order; completed when the pump ends.</summary>
    public ChannelReader<SseEvent> Live => _live.Reader;

    /// <summary>Whether the pump keeps reading the upstream after the live client has gone.</summary>
    public bool DrainsWithoutClient => Exchange.Kind == ChatRequestKind.Answer;

    public void Start() => Completion = RunAsync();

    /// <summary>Queues a heartbeat for the live client (from the client's heartbeat timer).</summary>
    public void EnqueueHeartbeat()
    {
        if (!_liveDetached)
        {
            _live.Writer.TryWrite(SseEvent.Heartbeat);
        }
    }

    /// <summary>The live client has gone: stop queueing for it, and stop reading if nobody else needs the stream.</summary>
    public void DetachLiveClient()
    {
        _liveDetached = true;
        _live.Writer.TryComplete();
        while (_live.Reader.TryRead(out _))
        {
        }

        if (!DrainsWithoutClient)
        {
            Stop(StreamOutcome.Abandoned);
        }
    }

    /// <summary>Stops reading the upstream, recording why.</summary>
    public void Stop(StreamOutcome reason)
    {
        _stopReason = reason;
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The pump has already finished.
        }
    }

    private async Task<StreamOutcome> RunAsync()
    {
        // Yield so the caller (YARP's response transform) is not held by the first reads.
        await Task.Yield();

        using var idle = new CancellationTokenSource(_options.UpstreamIdleTimeout, _time);
        using var deadline = new CancellationTokenSource(_options.MaxDuration, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(idle.Token, deadline.Token, _stop.Token);
        var framer = new SseEventReader(_options.MaxEventBytes);
        var pipe = PipeReader.Create(_upstream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4 * 1024, leaveOpen: true));
        var outcome = StreamOutcome.ShuttingDown;
        try
        {
            outcome = await ReadToEndAsync(pipe, framer, idle, linked.Token);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or ObjectDisposedException or OperationCanceledException)
        {
            // A read cancelled by one of our own tokens may surface as any of these.
            if (linked.IsCancellationRequested)
            {
                outcome = _stop.IsCancellationRequested ? _stopReason
                    : deadline.IsCancellationRequested ? StreamOutcome.MaxDurationExceeded
                    : StreamOutcome.UpstreamIdle;
            }
            else
            {
                Log.UpstreamReadFailed(_logger, Exchange.SessionId, State.MessageId, ex.GetType().Name);
                outcome = StreamOutcome.UpstreamFailed;
            }
        }
        catch (Exception ex)
        {
            // A bug, not a network failure: the stream still ends, and the process goes on.
            Log.PumpFailed(_logger, Exchange.SessionId, State.MessageId, ex);
            outcome = StreamOutcome.UpstreamFailed;
        }
        finally
        {
            _live.Writer.TryComplete();
            await pipe.CompleteAsync();
            await _upstream.DisposeAsync();
            _upstreamOwner.Dispose();
            _stop.Dispose();
        }

        return outcome;
    }

    private async Task<StreamOutcome> ReadToEndAsync(PipeReader pipe, SseEventReader framer, CancellationTokenSource idle, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await pipe.ReadAsync(cancellationToken);
            idle.CancelAfter(_options.UpstreamIdleTimeout);
            var buffer = result.Buffer;
            SseReadStatus status;
            while ((status = framer.TryRead(ref buffer, result.IsCompleted, out var bytes)) is SseReadStatus.Event or SseReadStatus.Fragment)
            {
                if (State.Bytes + bytes.Length > _options.MaxStreamBytes)
                {
                    pipe.AdvanceTo(buffer.Start);
                    return StreamOutcome.StreamTooLarge;
                }

                var evt = SseEvent.Parse(bytes, terminated: status == SseReadStatus.Event);
                State.Observe(evt);
                _metrics.EventForwarded(evt.Raw.Length);
                if (!_liveDetached)
                {
                    _live.Writer.TryWrite(evt);
                }
            }

            if (status == SseReadStatus.TooLarge)
            {
                pipe.AdvanceTo(buffer.Start);
                return StreamOutcome.EventTooLarge;
            }

            pipe.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return State.ErrorSeen ? StreamOutcome.UpstreamErrorPart
                    : State.FinishSeen ? StreamOutcome.Completed
                    : StreamOutcome.EndedWithoutFinish;
            }
        }
    }
}
