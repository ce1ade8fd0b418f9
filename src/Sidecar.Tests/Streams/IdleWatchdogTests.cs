using Microsoft.Extensions.Time.Testing;
using Sidecar.Streams;

namespace Sidecar.Tests.Streams;

public class IdleWatchdogTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void NothingRead_CancelsAtTheTimeout()
    {
        using var watchdog = new IdleWatchdog(TimeSpan.FromSeconds(60), _time);

        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.False(watchdog.IsCancellationRequested);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(watchdog.IsCancellationRequested);
    }

    [Fact]
    public void EveryRead_PushesTheTimeoutBack_FromThatRead()
    {
        using var watchdog = new IdleWatchdog(TimeSpan.FromSeconds(60), _time);

        _time.Advance(TimeSpan.FromSeconds(40));
        watchdog.Touch();
        _time.Advance(TimeSpan.FromSeconds(20));
        Assert.False(watchdog.IsCancellationRequested);
        _time.Advance(TimeSpan.FromSeconds(30));
        watchdog.Touch();
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.False(watchdog.IsCancellationRequested);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(watchdog.IsCancellationRequested);
    }
}
