namespace Sidecar.Streams;

/// <summary>
/// Cancels when nothing was read for the idle timeout. A read only notes the time (a timer
/// rescheduled on every read costs a timer-queue lock per event); the timer, when it fires,
/// re-arms itself for what is left of the timeout after the last read.
/// </summary>
internal sealed class IdleWatchdog : IDisposable
{
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _source = new();
    private readonly ITimer _timer;
    private long _lastRead;

    public IdleWatchdog(TimeSpan timeout, TimeProvider time)
    {
        _timeout = timeout;
        _time = time;
        _lastRead = time.GetTimestamp();
        _timer = time.CreateTimer(static s => ((IdleWatchdog)s!).Check(), this, timeout, Timeout.InfiniteTimeSpan);
    }

    public CancellationToken Token => _source.Token;

    public bool IsCancellationRequested => _source.IsCancellationRequested;

    /// <summary>Something was read now.</summary>
    public void Touch() => Volatile.Write(ref _lastRead, _time.GetTimestamp());

    private void Check()
    {
        try
        {
            var quiet = _time.GetElapsedTime(Volatile.Read(ref _lastRead));
            if (quiet >= _timeout)
            {
                _source.Cancel();
                return;
            }

            _timer.Change(_timeout - quiet, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // The stream ended meanwhile.
        }
        catch (Exception)
        {
            // A timer callback must never throw (it would end the process); a failing
            // cancellation callback has already done what it could.
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        _source.Dispose();
    }
}
