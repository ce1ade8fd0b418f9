using System.Buffers;
using System.Collections.Concurrent;

namespace ChatUpstream;

/// <summary>How an emulated answer ended on the emulator's side.</summary>
public enum AnswerStatus
{
    Running,
    /// <summary>Every frame was written and the body ended.</summary>
    Completed,
    /// <summary>The scenario ended the body early on purpose (end, stream-error).</summary>
    EndedEarly,
    /// <summary>The scenario dropped the connection on purpose.</summary>
    Dropped,
    /// <summary>The scenario stalled and the reader went away.</summary>
    StalledThenAbandoned,
    /// <summary>The reader (the sidecar) went away before the answer was written.</summary>
    ReaderGone,
}

/// <summary>One chat answer the emulator streamed: what it received, what it sent, how it ended.</summary>
public sealed class AnswerRecord(string messageId, string sessionId, IReadOnlyDictionary<string, string> requestHeaders, int totalFrames)
{
    private readonly TaskCompletionSource<AnswerStatus> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _gateReached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ArrayBufferWriter<byte> _sent = new();
    private int _framesSent;
    private long _savedAt = long.MaxValue;

    // What a resume replays while the answer runs (as resumable-stream keeps it in the producer's memory).
    private ArrayBufferWriter<byte>? _replay;
    private TaskCompletionSource _more = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _replayGate = new();
    private int _replayReaders;
    private bool _replayDone;

    public string MessageId { get; } = messageId;
    public string SessionId { get; } = sessionId;
    public IReadOnlyDictionary<string, string> RequestHeaders { get; } = requestHeaders;
    public int TotalFrames { get; } = totalFrames;
    public int FramesSent => Volatile.Read(ref _framesSent);
    public AnswerStatus Status => _ended.Task.IsCompleted ? _ended.Task.Result : AnswerStatus.Running;

    /// <summary>Completes with the status when the emulator's handler is done with the answer.</summary>
    public Task<AnswerStatus> Ended => _ended.Task;

    /// <summary>Completes when a <c>gate</c> scenario is waiting to be released.</summary>
    public Task GateReached => _gateReached.Task;

    /// <summary>Completes when a <c>stall</c> scenario has gone silent.</summary>
    public Task Stalled => _stalled.Task;

    /// <summary>The exact bytes written, when the journal records bodies.</summary>
    public byte[] SentBytes() { lock (_sent) { return _sent.WrittenSpan.ToArray(); } }

    public void ReleaseGate() => _gate.TrySetResult();

    /// <summary>Whether the answer counts as saved at <paramref name="timestamp"/> (the probe endpoint asks).</summary>
    public bool IsSaved(long timestamp) => timestamp >= Interlocked.Read(ref _savedAt);

    /// <summary>The acknowledgment callback's answer (status code), when the scenario posted one.</summary>
    public int? CallbackStatus { get; internal set; }

    internal void SavedAt(long timestamp) => Interlocked.Exchange(ref _savedAt, timestamp);

    internal Task WaitAtGateAsync(CancellationToken token)
    {
        _gateReached.TrySetResult();
        return _gate.Task.WaitAsync(token);
    }

    internal void MarkStalled() => _stalled.TrySetResult();

    internal void FrameSent(ReadOnlySpan<byte> frame, bool record)
    {
        if (record)
        {
            lock (_sent) { _sent.Write(frame); }
        }

        if (_replay is not null)
        {
            TaskCompletionSource more;
            lock (_replay)
            {
                _replay.Write(frame);
                more = _more;
                _more = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            more.TrySetResult();
        }
    }

    internal void KeepForResume() => _replay = new ArrayBufferWriter<byte>();

    /// <summary>A resume starts reading the answer; false once its bytes are let go (it has ended).</summary>
    internal bool OpenReplay()
    {
        lock (_replayGate)
        {
            if (_replay is null || _replayDone)
            {
                return false;
            }

            _replayReaders++;
            return true;
        }
    }

    /// <summary>A resume is done reading: the bytes go once the answer has ended and nobody reads them.</summary>
    internal void CloseReplay()
    {
        lock (_replayGate)
        {
            if (--_replayReaders == 0 && _replayDone)
            {
                _replay = null;
            }
        }
    }

    /// <summary>The answer has ended: its bytes go once the resumes reading them are done.</summary>
    internal void EndReplay()
    {
        lock (_replayGate)
        {
            _replayDone = true;
            if (_replayReaders == 0)
            {
                _replay = null;
            }
        }
    }

    /// <summary>Copies what was sent from <paramref name="offset"/> on, and the signal of the next write.</summary>
    internal (byte[] Bytes, Task More) ReplayFrom(int offset)
    {
        lock (_replay!)
        {
            return (_replay.WrittenSpan[offset..].ToArray(), _more.Task);
        }
    }

    internal void FrameCompleted() => Interlocked.Increment(ref _framesSent);

    internal void End(AnswerStatus status) => _ended.TrySetResult(status);
}

/// <summary>What the emulator has served: for tests, the demo and the benchmarks.</summary>
public sealed class EmulatorJournal
{
    private readonly ConcurrentDictionary<string, AnswerRecord> _answers = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<AnswerRecord>> _bySession = new();

    /// <summary>Keep a copy of every byte written (tests compare it with what clients received).</summary>
    public bool RecordBodies { get; set; }

    /// <summary>Headers of the last request on a path outside the chat route (the echo endpoint records them too).</summary>
    public ConcurrentQueue<(string Method, string Path, IReadOnlyDictionary<string, string> Headers)> OtherRequests { get; } = new();

    public AnswerRecord? Find(string messageId) => _answers.TryGetValue(messageId, out var r) ? r : null;

    private readonly ConcurrentDictionary<string, TaskCompletionSource<string>> _savedMessages = new();

    /// <summary>Completes with the JSON of a message submitted to the save endpoint (a save repair).</summary>
    public Task<string> MessageSaved(string messageId) =>
        _savedMessages.GetOrAdd(messageId, _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    internal void SaveMessage(string messageId, string json) =>
        _savedMessages.GetOrAdd(messageId, _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(json);

    /// <summary>The first answer streamed for a session (tests name each session uniquely).</summary>
    public Task<AnswerRecord> ForSession(string sessionId) =>
        _bySession.GetOrAdd(sessionId, _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    private readonly ConcurrentDictionary<string, AnswerRecord> _running = new();

    /// <summary>The session's answer that is running now, if any (what a resume replays).</summary>
    internal AnswerRecord? Running(string sessionId) => _running.TryGetValue(sessionId, out var r) ? r : null;

    internal void Started(AnswerRecord record) => _running[record.SessionId] = record;

    internal void Finished(AnswerRecord record) => _running.TryRemove(new KeyValuePair<string, AnswerRecord>(record.SessionId, record));

    internal void Add(AnswerRecord record)
    {
        _answers[record.MessageId] = record;
        _bySession.GetOrAdd(record.SessionId, _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(record);
    }
}
