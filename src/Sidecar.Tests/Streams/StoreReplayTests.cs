using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>
/// A replay whose store fails for a while (a stall, a failover, a slow answer under load) reads on
/// once it answers again, within the store writer's retry window; past that window it ends with
/// the typed resume error. Every event reaches the client once, in order.
/// </summary>
public sealed class StoreReplayTests : IAsyncDisposable
{
    private const int Events = 200;
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan SecondDelay = TimeSpan.FromMilliseconds(200);

    private readonly StreamStoreOptions _storeOptions = new();
    private readonly StreamOptions _streamOptions = new();
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().AddSingleton<SidecarMetrics>().BuildServiceProvider();
    private readonly WatchedTimers _time = new(DateTimeOffset.UnixEpoch, FirstDelay, SecondDelay);
    private readonly FailingReads _store;
    private readonly StoreReplay _replay;

    public StoreReplayTests()
    {
        _store = new FailingReads(new InMemoryStreamStore(Options.Create(_storeOptions), Options.Create(_streamOptions), _time), _time);
        var resume = new FixedOptions<ResumeOptions>(new ResumeOptions { EventIds = false });
        _replay = new StoreReplay(_store, resume, new FixedOptions<StreamOptions>(_streamOptions), Options.Create(_storeOptions), _time,
            _services.GetRequiredService<SidecarMetrics>(), NullLogger<StoreReplay>.Instance);
    }

    public async ValueTask DisposeAsync() => await _services.DisposeAsync();

    [Fact]
    public async Task StoreFailsOnce_TheReplayReadsOn_EveryEventOnce()
    {
        await StoreAnswerAsync();
        _store.FailFromRead(2, count: 1);

        var (result, sent) = await ReplayAsync();

        Assert.Equal(ReplayResult.Ended, result);
        Assert.Equal(Answer(), sent);
    }

    [Fact]
    public async Task StoreFailsThreeTimesInARow_TheReplayWaitsAGrowingDelay_ThenReadsOn()
    {
        await StoreAnswerAsync();
        _store.FailFromRead(2, count: 3);

        var replaying = ReplayAsync();
        // Tried again at once, then after 100 ms, then after 200 ms.
        Assert.True(await _time.CreatedWith(FirstDelay).WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
        Assert.False(replaying.IsCompleted);
        _time.Advance(FirstDelay);
        Assert.True(await _time.CreatedWith(SecondDelay).WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
        _time.Advance(SecondDelay);
        var (result, sent) = await replaying.DefaultTimeout();

        Assert.Equal(ReplayResult.Ended, result);
        Assert.Equal(Answer(), sent);
        // Three failed reads, three answered (64 events, 128, the rest).
        Assert.Equal(6, _store.Reads);
    }

    [Fact]
    public async Task StoreFailsLongerThanTheRetryWindow_TheReplayEndsWithTheTypedResumeError()
    {
        await StoreAnswerAsync();
        // Each failed read takes half the window (a call that timed out late).
        _store.FailFromRead(2, count: int.MaxValue, taking: _storeOptions.EffectiveWriteRetryWindow / 2);

        var (result, sent) = await ReplayAsync();

        Assert.Equal(ReplayResult.StoreFailed, result);
        // The first read's events, then the typed error.
        var parts = Endings.Parts(sent);
        Assert.Equal(Endings.Parts(Answer()).Take(StoreReplay.FirstReadBatch), parts[..^2]);
        Endings.AssertResumeUnavailableEnding(parts);
        // Tried once more, at once; that call's failure came as the window, counted from the
        // start of the first failed call, was over.
        Assert.Equal(3, _store.Reads);
    }

    private static string Answer()
    {
        var answer = new StringBuilder();
        for (var i = 0; i < Events; i++)
        {
            answer.Append("data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"").Append(i).Append(" \"}\n\n");
        }

        return answer.Append("data: [DONE]\n\n").ToString();
    }

    private async Task StoreAnswerAsync()
    {
        var write = new StreamWrite("m1")
        {
            Begin = new StreamRegistration("m1", "s1", "c010", "owner", "replica", DateTimeOffset.UnixEpoch.AddHours(1)),
            End = StoredStreamState.Completed,
        };
        var sequence = 0L;
        foreach (var part in Answer().Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            write.Events.Add(new StoredEvent(sequence++, Encoding.UTF8.GetBytes(part + "\n\n")));
        }

        Assert.All(await _store.WriteAsync([write], CancellationToken.None), Assert.True);
    }

    private async Task<(ReplayResult Result, string Sent)> ReplayAsync()
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(body));
        var result = await _replay.CopyAsync(context, "s1", "m1", from: 0);
        return (result, Encoding.UTF8.GetString(body.ToArray()));
    }

    /// <summary>A store whose reads fail (as a Redis timeout does) from a given read on, a given number of times.</summary>
    private sealed class FailingReads(IStreamStore inner, FakeTimeProvider time) : DelegatingStreamStore(inner)
    {
        private int _reads;
        private int _failFrom = int.MaxValue;
        private int _failures;
        private TimeSpan _taking;

        public int Reads => Volatile.Read(ref _reads);

        public void FailFromRead(int read, int count, TimeSpan taking = default) => (_failFrom, _failures, _taking) = (read, count, taking);

        public override Task<IReadOnlyList<StoredEvent>> ReadAsync(string messageId, long fromSequence, int maxCount, CancellationToken cancellationToken)
        {
            var read = Interlocked.Increment(ref _reads);
            if (read >= _failFrom && _failures > 0)
            {
                _failures--;
                time.Advance(_taking);
                return Task.FromException<IReadOnlyList<StoredEvent>>(new TimeoutException("The store did not answer in time."));
            }

            return base.ReadAsync(messageId, fromSequence, maxCount, cancellationToken);
        }
    }
}
