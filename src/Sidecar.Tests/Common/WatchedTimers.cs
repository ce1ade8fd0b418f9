using Microsoft.Extensions.Time.Testing;

namespace Sidecar.Tests.Common;

/// <summary>
/// A fake clock that signals each timer created with a watched due time: a wait on it has begun.
/// Any timer of that due time counts, so a test watches one that no other timer has while it waits.
/// </summary>
internal sealed class WatchedTimers : FakeTimeProvider
{
    private readonly Dictionary<TimeSpan, SemaphoreSlim> _created;

    public WatchedTimers(DateTimeOffset start, TimeSpan watched, params TimeSpan[] alsoWatched)
        : base(start)
    {
        _created = alsoWatched.Prepend(watched).Distinct().ToDictionary(due => due, _ => new SemaphoreSlim(0));
        Created = _created[watched];
    }

    /// <summary>Released for each timer created with the first watched due time.</summary>
    public SemaphoreSlim Created { get; }

    /// <summary>Released for each timer created with <paramref name="due"/> (one of the watched).</summary>
    public SemaphoreSlim CreatedWith(TimeSpan due) => _created[due];

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        if (_created.TryGetValue(dueTime, out var created))
        {
            created.Release();
        }

        return timer;
    }
}
