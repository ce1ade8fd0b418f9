using Microsoft.Extensions.Time.Testing;

namespace Sidecar.Tests.Common;

/// <summary>A fake clock that signals each timer created with the watched due time: a wait on it has begun.</summary>
internal sealed class WatchedTimers(DateTimeOffset start, TimeSpan watched) : FakeTimeProvider(start)
{
    public SemaphoreSlim Created { get; } = new(0);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        if (dueTime == watched)
        {
            Created.Release();
        }

        return timer;
    }
}
