namespace Sidecar.Persistence;

/// <summary>
/// One stream's wait for the acknowledgment of its save. An acknowledgment may come at any time,
/// even before <c>finish</c> (it is kept); the deadline starts at <c>finish</c>. The first result wins:
/// an acknowledgment, or null when the deadline passed first.
/// </summary>
internal sealed class AckWaiter(string messageId, string sessionId, string agentId, TimeSpan timeout, TimeProvider time, Func<AckWaiter, CancellationToken, Task>? probe) : IDisposable
{
    private readonly TaskCompletionSource<PersistenceAck?> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _deadline = new(Timeout.InfiniteTimeSpan, time);
    private readonly TaskCompletionSource _waiting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _started;

    public string MessageId { get; } = messageId;

    public string SessionId { get; } = sessionId;

    public string AgentId { get; } = agentId;

    /// <summary>When <c>finish</c> was seen (the start of the wait), as a timestamp of the time provider.</summary>
    public long StartedAt { get; private set; }

    /// <summary>Completes when the wait has started (the upstream's finish was seen and held).</summary>
    public Task Started => _waiting.Task;

    /// <summary>The acknowledgment, or null when the deadline passed without one.</summary>
    public Task<PersistenceAck?> Result => _result.Task;

    /// <summary>Records an acknowledgment; false when a result is already there (a duplicate).</summary>
    public bool TrySet(PersistenceAck ack) => _result.TrySetResult(ack);

    /// <summary>The deadline passes now (shutdown): a wait not yet decided ends unacknowledged.</summary>
    public void Expire() => _result.TrySetResult(null);

    /// <summary>The answer finished: the deadline starts now, and so does the probe, if any.</summary>
    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            return;
        }

        StartedAt = time.GetTimestamp();
        _deadline.Token.Register(() => _result.TrySetResult(null));
        _deadline.CancelAfter(timeout);
        if (probe is not null && !_result.Task.IsCompleted)
        {
            // Off the caller's thread (the pump's emission lock), and stopped as soon as the wait is decided.
            var decided = CancellationTokenSource.CreateLinkedTokenSource(_deadline.Token);
            _ = _result.Task.ContinueWith(
                _ =>
                {
                    try
                    {
                        decided.Cancel();
                    }
                    catch (ObjectDisposedException)
                    {
                        // The probe had already finished.
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            _ = Task.Run(async () =>
            {
                using (decided)
                {
                    await probe(this, decided.Token);
                }
            });
        }

        _waiting.TrySetResult();
    }

    public void Dispose()
    {
        _result.TrySetResult(null);
        _deadline.Dispose();
    }
}
