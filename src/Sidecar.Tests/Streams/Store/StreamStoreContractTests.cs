using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams.Store;

/// <summary>What every <see cref="IStreamStore"/> must do; each implementation runs this suite.</summary>
public abstract class StreamStoreContractTests
{
    protected static readonly DateTimeOffset Start = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    protected FakeTimeProvider Time { get; } = new(Start);

    protected StreamStoreOptions StoreOptions { get; } = new() { KeyPrefix = RedisServer.NewPrefix() };

    internal abstract IStreamStore Store { get; }

    [Fact]
    public async Task Write_BeginAppendEnd_EveryEventReadsBackInOrder()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));
        await WriteOkAsync(Append(id, 3, 2), End(id, StoredStreamState.Completed));

        var events = await Store.ReadAsync(id, 0, 100, default);
        var stream = await Store.GetAsync(id, default);

        Assert.Equal(Enumerable.Range(0, 5).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.Equal(Enumerable.Range(0, 5).Select(Event), events.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        Assert.Equal(StoredStreamState.Completed, stream!.State);
        Assert.Equal(5, stream.EventCount);
        Assert.Equal("owner-hash", stream.OwnerHash);
        Assert.Equal("replica-a", stream.ReplicaId);
        Assert.False(stream.Incomplete);
    }

    [Fact]
    public async Task Read_FromASequenceWithALimit_ReturnsThatSlice()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 10));

        var slice = await Store.ReadAsync(id, 4, 3, default);
        var past = await Store.ReadAsync(id, 10, 3, default);

        Assert.Equal([4L, 5L, 6L], slice.Select(e => e.Sequence));
        Assert.Empty(past);
    }

    [Fact]
    public async Task Read_NoPositions_OrPositionsNoStreamReaches_ReturnsNothing()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));

        Assert.Empty(await Store.ReadAsync(id, 0, 0, default));
        Assert.Empty(await Store.ReadAsync(id, 1, -1, default));
        Assert.Empty(await Store.ReadAsync(id, long.MaxValue - 10, 64, default));
        Assert.Empty(await Store.ReadAsync(id, long.MaxValue, 64, default));
    }

    [Fact]
    public async Task FindActive_ReturnsTheSessionsLatestStream()
    {
        var session = "s-" + NewId();
        var first = NewId();
        var second = NewId();
        await WriteOkAsync(Begin(first, session), End(first, StoredStreamState.Completed));
        await WriteOkAsync(Begin(second, session));

        var active = await Store.FindActiveAsync(session, default);

        Assert.Equal(second, active!.MessageId);
        Assert.Equal(session, active.SessionId);
        Assert.Equal(StoredStreamState.Live, active.State);
        Assert.Null(await Store.FindActiveAsync("s-" + NewId(), default));
        Assert.Equal(second, await Store.FindActiveIdAsync(session, default));
        Assert.Null(await Store.FindActiveIdAsync("s-" + NewId(), default));
    }

    [Fact]
    public async Task Write_BytesAreKeptExactly()
    {
        var id = NewId();
        byte[] raw = [0, 1, 2, 0xff, (byte)'\r', (byte)'\n', 0xc3, 0x28];
        var write = Begin(id, "s-" + id);
        write.Events.Add(new StoredEvent(0, raw));
        await WriteOkAsync(write);

        Assert.Equal(raw, (await Store.ReadAsync(id, 0, 10, default)).Single().Raw.ToArray());
    }

    [Fact]
    public async Task Write_TheStoreKeepsItsOwnCopy_OfEveryEvent()
    {
        // The writer's buffers are the pump's: what was stored must not change when they do.
        var id = NewId();
        var buffers = Enumerable.Range(0, 40).Select(i => Encoding.UTF8.GetBytes(Event(i))).ToList();
        var write = Begin(id, "s-" + id);
        for (var i = 0; i < buffers.Count; i++)
        {
            write.Events.Add(new StoredEvent(i, buffers[i]));
        }

        await WriteOkAsync(write);
        var whileLive = await Store.ReadAsync(id, 0, 100, default);
        await WriteOkAsync(End(id, StoredStreamState.Completed));
        foreach (var buffer in buffers)
        {
            Array.Fill(buffer, (byte)'x');
        }

        // Read while live (kept by a reader across the end) and after the end: both exact.
        var expected = Enumerable.Range(0, 40).Select(Event).ToList();
        Assert.Equal(expected, whileLive.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        var read = await Store.ReadAsync(id, 0, 100, default);
        Assert.Equal(expected, read.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), read.Select(e => e.Sequence));
    }

    [Fact]
    public async Task Write_AppendWithAGap_IsNotApplied()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 2));

        var applied = await Store.WriteAsync([Append(id, 5, 1)], default);

        Assert.False(applied.Single());
        Assert.Equal(2, (await Store.ReadAsync(id, 0, 10, default)).Count);
    }

    [Fact]
    public async Task Write_ManyStreamsInOneBatch_EachIsAppliedOrRefusedOnItsOwn()
    {
        // More streams than one store command takes: each write's answer is its own, in order.
        var ids = Enumerable.Range(0, 150).Select(_ => NewId()).ToList();
        await WriteOkAsync([.. ids.Select(id => Begin(id, "s-" + id))]);
        var writes = ids.Select((id, i) => i % 7 == 3 ? Append(id, 1, 2) : Append(id, 0, 1 + (i % 3))).ToList();
        writes[10].End = StoredStreamState.Completed;

        var applied = await Store.WriteAsync(writes, default).DefaultTimeout();

        for (var i = 0; i < ids.Count; i++)
        {
            var gap = i % 7 == 3;
            Assert.Equal(!gap, applied[i]);
            var events = await Store.ReadAsync(ids[i], 0, 10, default);
            Assert.Equal(gap ? [] : Enumerable.Range(0, 1 + (i % 3)).Select(Event), events.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        }

        Assert.Equal(StoredStreamState.Completed, (await Store.GetAsync(ids[10], default))!.State);
        Assert.Equal(StoredStreamState.Live, (await Store.GetAsync(ids[11], default))!.State);
    }

    [Fact]
    public async Task Write_ABurstLargerThanOneStoreCommand_IsStoredWholeAndCanBeSentAgain()
    {
        // About 400 KB of one stream in one write, then 100 KB with its end: a store may send
        // them in slices; they are stored whole, in order, and sending either again (its first
        // attempt landed late) counts as applied, while the stream is live and once it ended.
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id));
        var burst = Append(id, 0, 4000);
        var last = Append(id, 4000, 1000);
        last.End = StoredStreamState.Completed;

        var applied = await Store.WriteAsync([burst], default).DefaultTimeout();
        var burstAgain = await Store.WriteAsync([burst], default).DefaultTimeout();
        var ended = await Store.WriteAsync([last], default).DefaultTimeout();
        var endedAgain = await Store.WriteAsync([last], default).DefaultTimeout();

        Assert.True(applied.Single());
        Assert.True(burstAgain.Single());
        Assert.True(ended.Single());
        Assert.True(endedAgain.Single());
        var events = await Store.ReadAsync(id, 0, 6000, default);
        Assert.Equal(Enumerable.Range(0, 5000).Select(Event), events.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        var stream = await Store.GetAsync(id, default);
        Assert.Equal(StoredStreamState.Completed, stream!.State);
        Assert.Equal(5000, stream.EventCount);
    }

    [Fact]
    public async Task Write_SentAgainAfterItLanded_StoresEachEventOnce_AndCountsAsApplied()
    {
        // A batch that timed out may land late and also be sent again: each event is stored once.
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));

        var overlapping = await Store.WriteAsync([Append(id, 1, 4)], default);
        var last = Append(id, 5, 1);
        last.End = StoredStreamState.Completed;
        var ended = await Store.WriteAsync([last], default);
        var again = await Store.WriteAsync([last], default);

        Assert.True(overlapping.Single());
        Assert.True(ended.Single());
        Assert.True(again.Single());
        var events = await Store.ReadAsync(id, 0, 100, default);
        Assert.Equal(Enumerable.Range(0, 6).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.Equal(Enumerable.Range(0, 6).Select(Event), events.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        var stream = await Store.GetAsync(id, default);
        Assert.Equal(6, stream!.EventCount);
        Assert.Equal(StoredStreamState.Completed, stream.State);
    }

    [Fact]
    public async Task Write_LeaseIncompleteAndFailedEnd_AreRecorded()
    {
        var id = NewId();
        var renew = new StreamWrite(id) { RenewLeaseUntil = Start.AddMinutes(5), MarkIncomplete = true };
        await WriteOkAsync(Begin(id, "s-" + id), renew, End(id, StoredStreamState.Failed));

        var stream = await Store.GetAsync(id, default);

        Assert.Equal(Start.AddMinutes(5), stream!.LeaseExpiresAt);
        Assert.True(stream.Incomplete);
        Assert.Equal(StoredStreamState.Failed, stream.State);
    }

    [Fact]
    public async Task Write_AfterTheStreamEnded_ChangesNothing()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 2), End(id, StoredStreamState.Failed));

        var late = Append(id, 2, 1);
        late.End = StoredStreamState.Completed;
        late.MarkIncomplete = true;
        var applied = await Store.WriteAsync([late], default);
        var stream = await Store.GetAsync(id, default);

        Assert.False(applied.Single());
        Assert.Equal(2, stream!.EventCount);
        Assert.Equal(StoredStreamState.Failed, stream.State);
        Assert.False(stream.Incomplete);
    }

    [Fact]
    public async Task ReadIfOwned_ReadsForTheStreamsOwnerOnly()
    {
        var id = NewId();
        // Several events per write: stored as one entry of several events on Redis.
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));
        await WriteOkAsync(Append(id, 3, 3));

        var all = await Store.ReadAsync(id, 1, 4, default);
        var owned = await Store.ReadIfOwnedAsync(id, "owner-hash", 1, 4, default);
        var stranger = await Store.ReadIfOwnedAsync(id, "someone-else", 1, 4, default);
        var unknown = await Store.ReadIfOwnedAsync(NewId(), "owner-hash", 0, 4, default);

        Assert.Equal([1L, 2, 3, 4], all.Select(e => e.Sequence));
        Assert.Equal(all.Select(e => (e.Sequence, Encoding.UTF8.GetString(e.Raw.Span))), owned.Select(e => (e.Sequence, Encoding.UTF8.GetString(e.Raw.Span))));
        Assert.Empty(stranger);
        Assert.Empty(unknown);
    }

    [Fact]
    public async Task EndAbandoned_AfterTheLeaseLapsed_StoresTheEndingOnce()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 2));
        var ending = Encoding.UTF8.GetBytes("data: {\"type\":\"error\",\"errorText\":\"gone\"}\n\n");
        var lapsed = Start.AddSeconds(16);

        var first = await Store.EndAbandonedAsync(id, 2, ending, lapsed, default);
        var second = await Store.EndAbandonedAsync(id, 2, ending, lapsed, default);
        var third = await Store.EndAbandonedAsync(id, 3, ending, lapsed, default);
        var producerWritesOn = await Store.WriteAsync([Append(id, 3, 1)], default);
        // The producer's own last event and end, at the position the ending took: not applied
        // (its client saw an answer the store does not hold).
        var producerEnd = Append(id, 2, 1);
        producerEnd.End = StoredStreamState.Completed;
        var producerEnds = await Store.WriteAsync([producerEnd], default);
        // A failed end alone (a recovery's) has nothing to add; the producer's completed end alone
        // would claim an ending the store does not hold.
        var recovery = await Store.WriteAsync([new StreamWrite(id) { End = StoredStreamState.Failed, MarkIncomplete = true }], default);
        var completedAlone = await Store.WriteAsync([new StreamWrite(id) { End = StoredStreamState.Completed }], default);

        Assert.True(first);
        Assert.False(second);
        Assert.False(third);
        Assert.False(producerWritesOn.Single());
        Assert.False(producerEnds.Single());
        Assert.True(recovery.Single());
        Assert.False(completedAlone.Single());
        var stream = await Store.GetAsync(id, default);
        Assert.Equal(StoredStreamState.Failed, stream!.State);
        Assert.Equal(3, stream.EventCount);
        Assert.Equal(ending, (await Store.ReadAsync(id, 2, 10, default)).Single().Raw.ToArray());
    }

    [Fact]
    public async Task EndAbandoned_WhileTheLeaseHoldsOrAfterNewEvents_ChangesNothing()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 2));
        byte[] ending = [.. "data: {}\n\n"u8];

        var leaseHolds = await Store.EndAbandonedAsync(id, 2, ending, Start.AddSeconds(10), default);
        var staleCount = await Store.EndAbandonedAsync(id, 1, ending, Start.AddSeconds(16), default);
        var unknown = await Store.EndAbandonedAsync(NewId(), 0, ending, Start.AddSeconds(16), default);

        Assert.False(leaseHolds);
        Assert.False(staleCount);
        Assert.False(unknown);
        var stream = await Store.GetAsync(id, default);
        Assert.Equal(StoredStreamState.Live, stream!.State);
        Assert.Equal(2, stream.EventCount);
    }

    [Fact]
    public async Task Follower_WakesWhenEventsAreAppended()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 1));
        await using var follower = await Store.FollowAsync(id, default).DefaultTimeout();

        var waiting = follower.WaitAsync(follower.Mark, TimeSpan.FromHours(1), default);
        Assert.False(waiting.IsCompleted);
        await WriteOkAsync(Append(id, 1, 1));

        await waiting.DefaultTimeout();
    }

    [Fact]
    public async Task Follower_WakesWhenTheStreamEnds()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id));
        await using var follower = await Store.FollowAsync(id, default).DefaultTimeout();

        var waiting = follower.WaitAsync(follower.Mark, TimeSpan.FromHours(1), default);
        await WriteOkAsync(End(id, StoredStreamState.Completed));

        await waiting.DefaultTimeout();
    }

    [Fact]
    public async Task Follower_AChangeAfterTheMark_EndsTheNextWaitAtOnce()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id));
        await using var follower = await Store.FollowAsync(id, default).DefaultTimeout();
        var mark = follower.Mark;
        await WriteOkAsync(Append(id, 0, 1));
        await follower.WaitAsync(mark, TimeSpan.FromHours(1), default).DefaultTimeout();

        // The change has been heard; a reader that marked before it and waits only now must not block.
        var stale = follower.WaitAsync(mark, TimeSpan.FromHours(1), default);

        Assert.True(stale.IsCompleted);
        Assert.NotEqual(mark, follower.Mark);
    }

    [Fact]
    public async Task Follower_ManyWaitsOnOneSubscription_EachSeeTheirChange()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id));
        await using var follower = await Store.FollowAsync(id, default).DefaultTimeout();

        for (var i = 0; i < 20; i++)
        {
            var mark = follower.Mark;
            var waiting = follower.WaitAsync(mark, TimeSpan.FromHours(1), default);
            await WriteOkAsync(Append(id, i, 1));
            await waiting.DefaultTimeout();
        }

        Assert.Equal(20, (await Store.GetAsync(id, default))!.EventCount);
    }

    [Fact]
    public async Task UnknownStream_HasNoMetadataAndNoEvents()
    {
        var id = NewId();

        Assert.Null(await Store.GetAsync(id, default));
        Assert.Empty(await Store.ReadAsync(id, 0, 10, default));
    }

    protected static string NewId() => "m" + Guid.NewGuid().ToString("N")[..16];

    protected static string Event(int i) => $"data: {{\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"{i}\"}}\n\n";

    protected static StreamWrite Begin(string id, string session) =>
        new(id) { Begin = new StreamRegistration(id, session, "c010", "owner-hash", "replica-a", Start.AddSeconds(15)) };

    protected static StreamWrite Append(string id, int from, int count)
    {
        var write = new StreamWrite(id);
        for (var i = from; i < from + count; i++)
        {
            write.Events.Add(new StoredEvent(i, Encoding.UTF8.GetBytes(Event(i))));
        }

        return write;
    }

    protected static StreamWrite End(string id, StoredStreamState state) => new(id) { End = state };

    protected async Task WriteOkAsync(params StreamWrite[] writes) =>
        Assert.All(await Store.WriteAsync(writes, default).DefaultTimeout(), Assert.True);

    protected IOptions<StreamOptions> Streams { get; } = Options.Create(new StreamOptions());
}

public sealed class InMemoryStreamStoreTests : StreamStoreContractTests
{
    private readonly InMemoryStreamStore _store;

    public InMemoryStreamStoreTests() => _store = new InMemoryStreamStore(Options.Create(StoreOptions), Streams, Time);

    internal override IStreamStore Store => _store;

    [Fact]
    public async Task FinishedStreams_AreEvictedAfterTheRetention()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 2), End(id, StoredStreamState.Failed));

        Time.Advance(StoreOptions.Retention - TimeSpan.FromSeconds(1));
        Assert.NotNull(await Store.GetAsync(id, default));
        Time.Advance(TimeSpan.FromSeconds(1));
        await WriteOkAsync(Begin(NewId(), "s-other"));

        Assert.Null(await Store.GetAsync(id, default));
    }

    [Fact]
    public async Task StreamsThatNeverEnded_AreDroppedAfterTheirLifetime_FinishedOnesAfterTheirRetention()
    {
        StoreOptions.Retention = TimeSpan.FromMinutes(5);
        var lifetime = Streams.Value.MaxDuration + StoreOptions.Retention;
        var unfinished = NewId();
        var finishedFirst = NewId();
        var finishedLater = NewId();
        await WriteOkAsync(Begin(unfinished, "s-u"), Append(unfinished, 0, 3));
        await WriteOkAsync(Begin(finishedFirst, "s-f1"), Append(finishedFirst, 0, 1), End(finishedFirst, StoredStreamState.Completed));
        Time.Advance(TimeSpan.FromMinutes(2));
        await WriteOkAsync(Begin(finishedLater, "s-f2"), End(finishedLater, StoredStreamState.Completed));
        Assert.Equal(EventBytes(0, 3) + EventBytes(0, 1), _store.TotalBytes);

        // The first one's retention has passed, the later one's not yet.
        Time.Advance(TimeSpan.FromMinutes(3));
        await WriteOkAsync(Begin(NewId(), "s-other"));
        Assert.Null(await Store.GetAsync(finishedFirst, default));
        Assert.NotNull(await Store.GetAsync(finishedLater, default));
        Assert.NotNull(await Store.GetAsync(unfinished, default));
        Assert.Equal(EventBytes(0, 3), _store.TotalBytes);

        // The one that never ended stays until its whole lifetime (longest answer + retention) has
        // passed since it started, and goes then.
        Time.Advance(lifetime - TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
        await WriteOkAsync(Begin(NewId(), "s-other-2"));
        Assert.NotNull(await Store.GetAsync(unfinished, default));
        Time.Advance(TimeSpan.FromSeconds(1));
        await WriteOkAsync(Begin(NewId(), "s-other-3"));
        Assert.Null(await Store.GetAsync(unfinished, default));
        Assert.Null(await Store.FindActiveAsync("s-u", default));
        Assert.Equal(0, _store.TotalBytes);
    }

    [Fact]
    public async Task AStreamRegisteredAgain_StartsEmpty_AndItsOldCopyNoLongerCounts()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 5), End(id, StoredStreamState.Failed));
        Assert.Equal(EventBytes(0, 5), _store.TotalBytes);

        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 1));

        Assert.Single(await Store.ReadAsync(id, 0, 10, default));
        Assert.Equal(EventBytes(0, 1), _store.TotalBytes);

        // The old copy's place in the finished order expires without touching the new stream.
        Time.Advance(StoreOptions.Retention);
        await WriteOkAsync(Begin(NewId(), "s-other"));
        Assert.Equal(StoredStreamState.Live, (await Store.GetAsync(id, default))!.State);
        Assert.Equal(EventBytes(0, 1), _store.TotalBytes);
    }

    [Fact]
    public async Task WhenMakingRoomDropsTheLapsedStreamBeingWritten_TheWriteIsRefused_AndNothingIsCountedForIt()
    {
        StoreOptions.InMemoryMaxBytes = 1024 * 1024;
        var big = new string('x', 400 * 1024);
        var lapsed = NewId();
        await WriteOkAsync(Begin(lapsed, "s-lapsed"), BigEvent(lapsed, 0, big), BigEvent(lapsed, 1, big));

        // Its writer went quiet past the stream's lifetime; a late write needs room.
        Time.Advance(Streams.Value.MaxDuration + StoreOptions.Retention);
        var applied = await Store.WriteAsync([BigEvent(lapsed, 2, big)], default);

        Assert.False(applied.Single());
        Assert.Null(await Store.GetAsync(lapsed, default));
        Assert.Equal(0, _store.TotalBytes);
    }

    private static long EventBytes(int from, int count) =>
        Enumerable.Range(from, count).Sum(i => (long)Encoding.UTF8.GetByteCount(Event(i)));

    [Fact]
    public async Task WhenFull_OldestFinishedStreamsGoFirst_AndLiveOnesLoseResume()
    {
        StoreOptions.InMemoryMaxBytes = 1024 * 1024;
        var big = new string('x', 400 * 1024);
        var old = NewId();
        var live = NewId();
        await WriteOkAsync(Begin(old, "s-old"), BigEvent(old, 0, big), End(old, StoredStreamState.Failed));
        await WriteOkAsync(Begin(live, "s-live"), BigEvent(live, 0, big));

        // A third large event: the finished stream makes room.
        await WriteOkAsync(BigEvent(live, 1, big));
        Assert.Null(await Store.GetAsync(old, default));

        // A fourth: nothing finished is left to evict, so the live stream loses resume.
        var applied = await Store.WriteAsync([BigEvent(live, 2, big)], default);
        Assert.False(applied.Single());
        Assert.True((await Store.GetAsync(live, default))!.Incomplete);
        Assert.True(_store.TotalBytes <= StoreOptions.InMemoryMaxBytes);
    }

    private static StreamWrite BigEvent(string id, int sequence, string text)
    {
        var write = new StreamWrite(id);
        write.Events.Add(new StoredEvent(sequence, Encoding.UTF8.GetBytes(text)));
        return write;
    }
}

public sealed class RedisStreamStoreTests : StreamStoreContractTests, IDisposable
{
    private readonly RedisStreamStore _store;
    private readonly RedisConnection _redis;

    public RedisStreamStoreTests()
    {
        StoreOptions.Redis = RedisServer.Configuration;
        _redis = new RedisConnection(Options.Create(StoreOptions));
        _store = new RedisStreamStore(_redis, Options.Create(StoreOptions), Streams, Time);
    }

    internal override IStreamStore Store => _store;

    [Fact]
    public async Task EveryKeyWritten_HasATimeToLive()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));
        await WriteOkAsync(End(id, StoredStreamState.Completed));

        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisServer.Configuration);
        var server = redis.GetServers().Single();
        var keys = server.Keys(pattern: StoreOptions.KeyPrefix + ":*").ToList();

        Assert.Equal(3, keys.Count);
        foreach (var key in keys)
        {
            var ttl = await redis.GetDatabase().KeyTimeToLiveAsync(key);
            Assert.True(ttl is { } t && t > TimeSpan.Zero && t <= StreamOptionsLifetime, $"{key}: {ttl}");
        }
    }

    [Fact]
    public async Task Follower_HearsAppends_WhenTheConnectionStringSetsAChannelPrefix()
    {
        // The write script publishes the notify channel by its own name; a channel prefix the
        // connection added only to subscriptions would leave followers waiting for their timeout.
        var options = new StreamStoreOptions { Redis = RedisServer.Configuration + ",channelPrefix=tenant-a:", KeyPrefix = StoreOptions.KeyPrefix };
        using var redis = new RedisConnection(Options.Create(options));
        var store = new RedisStreamStore(redis, Options.Create(options), Streams, Time);
        var id = NewId();
        Assert.All(await store.WriteAsync([Begin(id, "s-" + id), Append(id, 0, 1)], default).DefaultTimeout(), Assert.True);
        await using var follower = await store.FollowAsync(id, default).DefaultTimeout();

        var waiting = follower.WaitAsync(follower.Mark, TimeSpan.FromHours(1), default);
        Assert.All(await store.WriteAsync([Append(id, 1, 1)], default).DefaultTimeout(), Assert.True);

        await waiting.DefaultTimeout();
    }

    [Fact]
    public async Task AWriteOfSeveralEvents_IsOneStreamEntry_AndAnEventReadsBackAloneFromAnyPosition()
    {
        // One entry per write slice, not per event: what makes a burst cheap for Redis. Each event
        // still reads back alone, with its own position, from inside an entry and across entries.
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 1));
        await WriteOkAsync(Append(id, 1, 7));
        await WriteOkAsync(Append(id, 8, 2));

        var entries = await EntriesAsync(id);

        Assert.Equal(["0-1", "0-8", "0-10"], entries.Select(e => e.Id.ToString()));
        Assert.True(entries[0]["n"].IsNull);
        Assert.Equal("50,50,50,50,50,50,50", entries[1]["n"].ToString());
        for (var from = 0; from < 10; from++)
        {
            for (var count = 1; count <= 10 - from; count++)
            {
                var read = await Store.ReadAsync(id, from, count, default);
                Assert.Equal(Enumerable.Range(from, count).Select(Event), read.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
                Assert.Equal(Enumerable.Range(from, count).Select(i => (long)i), read.Select(e => e.Sequence));
            }
        }
    }

    [Fact]
    public async Task Write_SentAgainWithOneEventMissing_StoresThatEventAlone_AndEmptyEventsKeepTheirPlace()
    {
        // A resent write that overlaps all but its last event stores that one as a plain entry;
        // events of no bytes inside an entry keep their positions.
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));
        await WriteOkAsync(Append(id, 1, 3));
        var empties = new StreamWrite(id);
        empties.Events.AddRange([new StoredEvent(4, Array.Empty<byte>()), new StoredEvent(5, Encoding.UTF8.GetBytes(Event(5))), new StoredEvent(6, Array.Empty<byte>())]);
        await WriteOkAsync(empties);

        var entries = await EntriesAsync(id);
        var read = await Store.ReadAsync(id, 0, 100, default);

        Assert.Equal(["0-3", "0-4", "0-7"], entries.Select(e => e.Id.ToString()));
        Assert.True(entries[1]["n"].IsNull);
        Assert.Equal("0,50,0", entries[2]["n"].ToString());
        Assert.Equal(Enumerable.Range(0, 7).Select(i => (long)i), read.Select(e => e.Sequence));
        Assert.Equal([.. Enumerable.Range(0, 4).Select(Event), string.Empty, Event(5), string.Empty], read.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
    }

    [Fact]
    public async Task RefusedAppends_LeaveNothingBehind_AndTheStreamGoesOnFromWhatItCounts()
    {
        // An append with a gap, one behind the stream's end and one to an unknown stream store no
        // entry and no key, and the stream's next append lands.
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 2));

        Assert.False((await Store.WriteAsync([Append(id, 5, 3)], default)).Single());
        await WriteOkAsync(Append(id, 2, 2));
        await WriteOkAsync(End(id, StoredStreamState.Completed));
        Assert.False((await Store.WriteAsync([Append(id, 4, 2)], default)).Single());
        var unknown = NewId();
        Assert.False((await Store.WriteAsync([Append(unknown, 0, 2)], default)).Single());

        Assert.Equal(["0-2", "0-4"], (await EntriesAsync(id)).Select(e => e.Id.ToString()));
        Assert.Equal(Enumerable.Range(0, 4).Select(Event), (await Store.ReadAsync(id, 0, 100, default)).Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        Assert.Equal(4, (await Store.GetAsync(id, default))!.EventCount);
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisServer.Configuration);
        Assert.False(await redis.GetDatabase().KeyExistsAsync(EventsKey(unknown)));
    }

    [Fact]
    public async Task Read_AroundAMissingEntry_GivesEachEventItsOwnPosition()
    {
        // An entry lost (evicted, deleted) leaves a gap the reader sees by the positions.
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));
        await WriteOkAsync(Append(id, 3, 7));
        await WriteOkAsync(Append(id, 10, 2));
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisServer.Configuration);
        Assert.Equal(1, await redis.GetDatabase().StreamDeleteAsync(EventsKey(id), ["0-10"]));

        Assert.Equal([0L, 1, 2, 10, 11], (await Store.ReadAsync(id, 0, 100, default)).Select(e => e.Sequence));
        Assert.Empty(await Store.ReadAsync(id, 4, 3, default));
        // The only entry is the one after the window, past a hole: left, as one appended between
        // the read's two ranges is (a replay reads again, and finds the hole by the stored count).
        Assert.Empty(await Store.ReadAsync(id, 5, 6, default));
    }

    [Theory]
    [InlineData("0-3", "24,24")]
    [InlineData("0-3", "24,x,24")]
    [InlineData("0-3", "24,-1,25")]
    [InlineData("0-3", "50,50,51")]
    [InlineData("0-3", "50,50,49")]
    [InlineData("0-2", "50,50,50")]
    public async Task Read_AnEntryWhoseLengthsDoNotMatchItsData_FailsAsTheStore(string entryId, string lengths)
    {
        // Never events cut at the wrong places: the read fails, and a replay ends with its typed error.
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 3));
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisServer.Configuration);
        var db = redis.GetDatabase();
        var data = (await db.StreamRangeAsync(EventsKey(id))).Single()["d"];
        await db.KeyDeleteAsync(EventsKey(id));
        await db.StreamAddAsync(EventsKey(id), [new("n", lengths), new("d", data)], messageId: entryId);

        await Assert.ThrowsAsync<StackExchange.Redis.RedisException>(() => Store.ReadAsync(id, 0, 10, default));
    }

    [Fact]
    public async Task Keys_OfOneMessage_ShareAClusterSlot()
    {
        var id = NewId();
        await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 1));

        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisServer.Configuration);
        var keys = redis.GetServers().Single().Keys(pattern: $"{StoreOptions.KeyPrefix}:{{msg:{id}}}:*").ToList();

        Assert.Equal(2, keys.Count);
        Assert.Single(keys.Select(k => redis.HashSlot(k)).Distinct());
    }

    public void Dispose() => _redis.Dispose();

    private TimeSpan StreamOptionsLifetime => new StreamOptions().MaxDuration + StoreOptions.Retention;

    private string EventsKey(string id) => $"{StoreOptions.KeyPrefix}:{{msg:{id}}}:events";

    /// <summary>The stream's entries as Redis holds them, read directly.</summary>
    private async Task<StackExchange.Redis.StreamEntry[]> EntriesAsync(string id)
    {
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisServer.Configuration);
        return await redis.GetDatabase().StreamRangeAsync(EventsKey(id));
    }
}

/// <summary>The same contract on a real three-node Redis Cluster: keys of one message share a slot, the rest spread.</summary>
public sealed class RedisClusterStreamStoreTests : StreamStoreContractTests, IDisposable
{
    private readonly RedisStreamStore _store;
    private readonly RedisConnection _redis;

    public RedisClusterStreamStoreTests()
    {
        StoreOptions.Redis = RedisCluster.Configuration;
        _redis = new RedisConnection(Options.Create(StoreOptions));
        _store = new RedisStreamStore(_redis, Options.Create(StoreOptions), Streams, Time);
    }

    internal override IStreamStore Store => _store;

    [Fact]
    public async Task Streams_SpreadOverTheNodes()
    {
        var ids = Enumerable.Range(0, 12).Select(_ => NewId()).ToList();
        foreach (var id in ids)
        {
            await WriteOkAsync(Begin(id, "s-" + id), Append(id, 0, 1));
        }

        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisCluster.Configuration);
        var nodesWithKeys = redis.GetServers().Count(s => s.Keys(pattern: StoreOptions.KeyPrefix + ":*").Any());

        Assert.Equal(3, redis.GetServers().Length);
        Assert.True(nodesWithKeys >= 2, $"keys on {nodesWithKeys} node(s)");
        foreach (var id in ids)
        {
            Assert.NotNull(await Store.GetAsync(id, default));
        }
    }

    public void Dispose() => _redis.Dispose();
}
