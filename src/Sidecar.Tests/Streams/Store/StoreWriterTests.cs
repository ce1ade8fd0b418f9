using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams.Store;

public sealed class StoreWriterTests : IAsyncDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    // Events queued before the writer starts in the queue-replacement tests: past its threshold.
    private const int BacklogEvents = 70_000;

    private readonly FakeTimeProvider _time = new(Start);
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().AddSingleton<SidecarMetrics>().BuildServiceProvider();
    private readonly InMemoryStreamStore _store;
    private readonly StoreWriter _writer;

    public StoreWriterTests()
    {
        // No gathering wait (the default; its own tests below).
        var options = Options.Create(new StreamStoreOptions());
        _store = new InMemoryStreamStore(options, Options.Create(new StreamOptions()), _time);
        _writer = new StoreWriter(_store, options, _time, _services.GetRequiredService<SidecarMetrics>(), NullLogger<StoreWriter>.Instance);
    }

    [Fact]
    public async Task Write_ReusedForTheNextStream_CarriesNothingOfTheFirst()
    {
        // The first stream's write carries a registration, events, a lease renewal and an end, all
        // queued before the writer starts, so that they make one batch and one write; once it is
        // stored, the writer's next batch reuses that write for the second stream.
        var first = _writer.Open(new StreamRegistration("m-first", "s-first", "c010", "owner-1", "replica-a", Start.AddSeconds(15)));
        first.Append(0, Event("one"));
        first.Append(1, Event("two"));
        first.RenewLease(Start.AddHours(1));
        first.End(StoredStreamState.Completed);
        await _writer.StartAsync(CancellationToken.None);
        await StoreProbe.WaitForEndAsync(_store, "s-first");

        var second = _writer.Open(new StreamRegistration("m-second", "s-second", "c010", "owner-2", "replica-b", Start.AddSeconds(30)));
        second.Append(0, Event("three"));
        await StoreProbe.WaitForEventsAsync(_store, "s-second", 1);

        var stream = await _store.GetAsync("m-second", default);
        Assert.NotNull(stream);
        Assert.Equal(("s-second", "owner-2", "replica-b"), (stream.SessionId, stream.OwnerHash, stream.ReplicaId));
        Assert.Equal(StoredStreamState.Live, stream.State);
        Assert.False(stream.Incomplete);
        Assert.Equal(Start.AddSeconds(30), stream.LeaseExpiresAt);
        Assert.Equal(1, stream.EventCount);
        var events = await _store.ReadAsync("m-second", 0, 10, default);
        Assert.Equal(["data: three\n\n"], events.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        Assert.Equal(StoredStreamState.Completed, (await _store.GetAsync("m-first", default))!.State);
    }

    [Fact]
    public async Task Write_PutAsideAfterItsBatch_DoesNotKeepItsEventsBytesAlive()
    {
        // A write waits as a spare for a later batch, perhaps a long while: emptied when put
        // aside, it does not keep the last batch's event bytes alive (the store has its own copy).
        var caughtUp = new SemaphoreSlim(0);
        _writer.CaughtUp = () => caughtUp.Release();
        var tee = Open("spare");
        var bytes = AppendUnreferenced(tee);
        await _writer.StartAsync(CancellationToken.None);
        Assert.True(await caughtUp.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
        Assert.Equal(1, (await _store.GetAsync("m-spare", default))!.EventCount);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(bytes.TryGetTarget(out _));
    }

    [Fact]
    public void Reuse_ForAnotherStream_LeavesNothingOfTheEarlierOne()
    {
        var write = new StreamWrite("m-first")
        {
            Begin = new StreamRegistration("m-first", "s-first", "c010", "owner", "replica", Start),
            RenewLeaseUntil = Start,
            MarkIncomplete = true,
            End = StoredStreamState.Failed,
        };
        write.Events.Add(new StoredEvent(0, Event("one")));

        Assert.Same(write, write.Reuse("m-second"));

        Assert.Equal("m-second", write.MessageId);
        Assert.Null(write.Begin);
        Assert.Empty(write.Events);
        Assert.Null(write.RenewLeaseUntil);
        Assert.False(write.MarkIncomplete);
        Assert.Null(write.End);
    }

    [Fact]
    public async Task Queue_AfterALargeBacklogDrained_IsReplaced_AndEveryStreamKeepsItsOrder()
    {
        // A backlog of 70,000 events (as after a stall of the store), queued before the writer
        // starts; then four streams written from four threads while the writer drains it and
        // replaces its queue: every event stored once, in order (a store refuses a gap). (In trial
        // runs the queue was replaced while all four were mid-stream; the next test makes certain
        // of a stream straddling the two queues.)
        const int PerStream = 5_000;
        QueueBacklog().End(StoredStreamState.Completed);
        var replaced = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _writer.QueueReplacing = published => _ = published && replaced.TrySetResult();
        await _writer.StartAsync(CancellationToken.None);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(s => Task.Run(async () =>
        {
            var tee = Open(s.ToString(System.Globalization.CultureInfo.InvariantCulture));
            for (var i = 0; i < PerStream; i++)
            {
                tee.Append(i, Event($"{s}-{i}"));
                if (i % 50 == 0)
                {
                    // Let the writer catch up now and then, so that its queue empties (and is
                    // replaced) while the streams are still being written.
                    await Task.Yield();
                }
            }

            tee.End(StoredStreamState.Completed);
        }))).DefaultTimeout();

        await StoreProbe.WaitForEndAsync(_store, "s-backlog");
        for (var s = 0; s < 4; s++)
        {
            await StoreProbe.WaitForEndAsync(_store, $"s-{s}");
            var stream = (await _store.GetAsync($"m-{s}", default))!;
            Assert.Equal((StoredStreamState.Completed, false, PerStream), (stream.State, stream.Incomplete, stream.EventCount));
            var events = await _store.ReadAsync($"m-{s}", 0, PerStream, default);
            Assert.Equal(Enumerable.Range(0, PerStream).Select(i => $"data: {s}-{i}\n\n"), events.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        }

        Assert.Equal(BacklogEvents, (await _store.GetAsync("m-backlog", default))!.EventCount);
        await replaced.Task.DefaultTimeout();

        // The fresh queue is the one written to from now on.
        var after = Open("after");
        after.Append(0, Event("after"));
        await StoreProbe.WaitForEventsAsync(_store, "s-after", 1);
    }

    [Fact]
    public async Task Queue_ReplacedWhileAStreamHasOpsInBoth_WritesTheOldOnesFirst()
    {
        // Made certain on the writer's loop: when the backlog has drained, a stream is registered
        // and given ten events in the old queue (just before the fresh one is published), then ten
        // more in the fresh one (just after, while the old one is still to be read). The old queue
        // must be read to its end first: abandoned, or read after the fresh one, the stream's
        // events would never be stored whole (a store refuses a gap).
        QueueBacklog();
        StreamTee? straddling = null;
        var phases = new List<bool>();
        _writer.QueueReplacing = published =>
        {
            phases.Add(published);
            straddling ??= Open("straddle");
            var first = published ? 10 : 0;
            for (var i = first; i < first + 10; i++)
            {
                straddling.Append(i, Event("s" + i));
            }
        };
        await _writer.StartAsync(CancellationToken.None);

        await StoreProbe.WaitForEventsAsync(_store, "s-straddle", 20);
        var events = await _store.ReadAsync("m-straddle", 0, 100, default);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"data: s{i}\n\n"), events.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        Assert.Equal([false, true], phases);
    }

    [Fact]
    public async Task Queue_NeverEmptyButNeverDeep_IsKeptThroughALongRun()
    {
        // Under a steady load the queue may not empty between batches for a long run while it never
        // holds many ops: its ring is small and stays. (Counting the ops since it was last empty
        // instead replaced it several times a second under such a load, each fresh queue growing
        // its ring again.) Here 70 batches of 1,000 events: each next 1,000 are queued while the
        // store holds the batch before, so 70,000 ops (more than the bound on what the queue may
        // hold) go through without the queue once empty, and it never holds more than 1,001.
        const int Batches = 70;
        const int PerBatch = 1_000;
        var gated = new GatedStore(_store);
        var writer = new StoreWriter(gated, Options.Create(new StreamStoreOptions()), _time, _services.GetRequiredService<SidecarMetrics>(), NullLogger<StoreWriter>.Instance);
        var replacements = 0;
        writer.QueueReplacing = published => _ = published && Interlocked.Increment(ref replacements) > 0;
        var tee = writer.Open(new StreamRegistration("m-steady", "s-steady", "c010", "owner", "replica", Start.AddHours(1)));
        for (var i = 0; i < PerBatch; i++)
        {
            tee.Append(i, Event("e" + i));
        }

        await writer.StartAsync(CancellationToken.None);
        try
        {
            for (var batch = 1; batch < Batches; batch++)
            {
                // The writer has taken everything queued and waits on the store.
                Assert.True(await gated.Entered.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
                for (var i = batch * PerBatch; i < (batch + 1) * PerBatch; i++)
                {
                    tee.Append(i, Event("e" + i));
                }

                gated.Release.Release();
            }

            Assert.True(await gated.Entered.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            gated.Open();
            tee.End(StoredStreamState.Completed);
            await StoreProbe.WaitForEndAsync(_store, "s-steady");

            Assert.Equal(Batches * PerBatch, (await _store.GetAsync("m-steady", default))!.EventCount);
            Assert.True(writer.Batches >= Batches, $"{writer.Batches} batches");

            // Stopped, the writer's loop is past the check that follows its last batch (the queue
            // drained), where a replacement would have come.
            await writer.StopAsync(CancellationToken.None);
            Assert.Equal(0, Volatile.Read(ref replacements));
        }
        finally
        {
            gated.Open();
            await writer.StopAsync(CancellationToken.None);
            writer.Dispose();
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Pump_ReadsNothingFromTheUpstream_UntilItsRegistrationIsStored_OrTheWaitForItIsOver(bool storeAnswers)
    {
        // The client gets no headers before its stream is registered, so the pump reads nothing
        // before then either: a whole answer would otherwise wait in this process through the
        // store's round trip. The writer is not started yet: the registration waits in its queue.
        var options = new StreamStoreOptions();
        var time = new WatchedTimers(Start, options.OperationTimeout);
        var metrics = _services.GetRequiredService<SidecarMetrics>();
        var writer = new StoreWriter(_store, Options.Create(options), time, metrics, NullLogger<StoreWriter>.Instance);
        var tee = writer.Open(new StreamRegistration("m-wait", "s-wait", "c010", "owner", "replica", Start.AddHours(1)));
        var answer = "data: {\"type\":\"start\",\"messageId\":\"m-wait\"}\n\ndata: {\"type\":\"finish\"}\n\ndata: [DONE]\n\n";
        var upstream = new CountingStream(Encoding.UTF8.GetBytes(answer));
        var pump = new StreamPump(new ChatExchange("c010", "s-wait", "r1", "owner"), upstream, upstream, "m-wait", new StreamOptions(), time, NullLogger.Instance, metrics, tee);
        try
        {
            pump.Start();

            // The pump waits for the registration, bounded by the store's operation timeout (its timer).
            Assert.True(await time.Created.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
            Assert.Equal(0, upstream.Reads);
            Assert.False(pump.Completion.IsCompleted);

            if (storeAnswers)
            {
                await writer.StartAsync(CancellationToken.None);
                await tee.Registered.DefaultTimeout();
            }
            else
            {
                // A store that does not answer holds the answer up no longer than that.
                time.Advance(options.OperationTimeout);
                Assert.False(tee.Registered.IsCompleted);
            }

            Assert.Equal(StreamOutcome.Completed, await pump.Completion.DefaultTimeout());
            Assert.True(upstream.Reads > 0);
            Assert.Equal(3, pump.State.Events);
            if (!storeAnswers)
            {
                await writer.StartAsync(CancellationToken.None);
            }

            // Either way every event is stored, in order, after the registration.
            await StoreProbe.WaitForEndAsync(_store, "s-wait");
            var stored = await _store.ReadAsync("m-wait", 0, 10, default);
            Assert.Equal(Chat.Events(Encoding.UTF8.GetBytes(answer)).Select(Encoding.UTF8.GetString), stored.Select(e => Encoding.UTF8.GetString(e.Raw.Span)));
        }
        finally
        {
            // A failed assertion must not leave the pump waiting on the fake clock.
            pump.Stop(StreamOutcome.ShuttingDown);
            await pump.Completion.DefaultTimeout();
            await writer.StopAsync(CancellationToken.None);
            writer.Dispose();
        }
    }

    [Fact]
    public async Task Registering_NamesASessionsNewestStream_UntilTheStoreAnsweredItsRegistration_EvenWhenLostBefore()
    {
        // A stop or resume on this replica waits on it: a stream that lost resume while its
        // registration was still queued (a backlog) is not yet in the store's view of the session.
        var older = Open("older");
        var newest = _writer.Open(new StreamRegistration("m-newest", "s-older", "c010", "owner", "replica", Start.AddHours(1)));
        Assert.Same(newest, _writer.Registering("s-older"));
        Assert.Equal("owner", newest.OwnerHash);

        newest.Lose("backlog");
        Assert.True(newest.Registered.IsCompleted);
        Assert.False(newest.RegistrationWritten.IsCompleted);
        Assert.Same(newest, _writer.Registering("s-older"));

        await _writer.StartAsync(CancellationToken.None);
        await newest.RegistrationWritten.DefaultTimeout();
        await older.RegistrationWritten.DefaultTimeout();
        Assert.Null(_writer.Registering("s-older"));
        Assert.Equal("m-newest", (await _store.FindActiveAsync("s-older", default))!.MessageId);
    }

    [Fact]
    public async Task Gathering_EventsQueuedWhileTheWriterWaits_GoInOneBatchOnceTheDelayPassed()
    {
        await using var gathering = new GatheringWriter(_store, _services.GetRequiredService<SidecarMetrics>());
        var tee = gathering.Writer.Open(new StreamRegistration("m-paced", "s-paced", "c010", "owner", "replica", Start.AddHours(1)));
        Assert.True(await gathering.CaughtUp.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
        var batches = gathering.Writer.Batches;

        tee.Append(0, Event("one"));
        Assert.True(await gathering.Waiting.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
        tee.Append(1, Event("two"));
        tee.Append(2, Event("three"));
        gathering.Time.Advance(GatheringWriter.Delay - TimeSpan.FromMilliseconds(1));

        Assert.Equal(0, (await _store.GetAsync("m-paced", default))!.EventCount);
        gathering.Time.Advance(TimeSpan.FromMilliseconds(1));
        await StoreProbe.WaitForEventsAsync(_store, "s-paced", 3);
        Assert.Equal(batches + 1, gathering.Writer.Batches);
    }

    [Fact]
    public async Task Gathering_ANewStreamsRegistration_EndsTheWaitAtOnce()
    {
        // Its client's headers wait for the registration: never for the gathering delay.
        await using var gathering = new GatheringWriter(_store, _services.GetRequiredService<SidecarMetrics>());
        var paced = gathering.Writer.Open(new StreamRegistration("m-paced", "s-paced", "c010", "owner", "replica", Start.AddHours(1)));
        Assert.True(await gathering.CaughtUp.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));

        paced.Append(0, Event("one"));
        Assert.True(await gathering.Waiting.WaitAsync(TaskTimeoutExtensions.DefaultTimeoutSpan));
        var registered = gathering.Writer.Open(new StreamRegistration("m-new", "s-new", "c010", "owner", "replica", Start.AddHours(1)));

        await registered.Registered.DefaultTimeout();
        await StoreProbe.WaitForEventsAsync(_store, "s-paced", 1);
        Assert.NotNull(await _store.GetAsync("m-new", default));
    }

    [Theory]
    [InlineData(15_000, 2_000, 20, 20, 5_000)]
    [InlineData(15_000, 2_000, 1_000, 1_000, 5_000)]
    [InlineData(9_000, 2_000, 1_000, 1_000, 3_000)]
    [InlineData(100, 10, 1_000, 16.667, 40)]
    [InlineData(1_000, 100, 1_000, 166.667, 400)]
    public void Gathering_FitsInTheLease_WithTheRetryWindow(double leaseMs, double timeoutMs, double delayMs, double effectiveDelayMs, double retryWindowMs)
    {
        // A lease renewal waits in the gathering wait, then in a retried batch: both within the
        // two thirds of the lease left before resumers on other replicas take the producer for dead.
        var options = new StreamStoreOptions
        {
            LeaseDuration = TimeSpan.FromMilliseconds(leaseMs),
            OperationTimeout = TimeSpan.FromMilliseconds(timeoutMs),
            WriteDelay = TimeSpan.FromMilliseconds(delayMs),
        };

        Assert.Equal(effectiveDelayMs, options.EffectiveWriteDelay.TotalMilliseconds, 0.01);
        Assert.Equal(retryWindowMs, options.EffectiveWriteRetryWindow.TotalMilliseconds, 0.01);
        Assert.True(options.EffectiveWriteDelay + options.EffectiveWriteRetryWindow + options.OperationTimeout <= options.LeaseDuration * 2 / 3 + TimeSpan.FromMilliseconds(0.01));
    }

    public async ValueTask DisposeAsync()
    {
        await _writer.StopAsync(CancellationToken.None);
        _writer.Dispose();
        await _services.DisposeAsync();
    }

    /// <summary>A second writer on the same store, with the gathering delay on and a clock that says when the writer waits on it.</summary>
    private sealed class GatheringWriter : IAsyncDisposable
    {
        public GatheringWriter(IStreamStore store, SidecarMetrics metrics)
        {
            Writer = new StoreWriter(store, Options.Create(new StreamStoreOptions { WriteDelay = Delay }), Time, metrics, NullLogger<StoreWriter>.Instance)
            {
                CaughtUp = () => CaughtUp.Release(),
            };
            Writer.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        }

        public static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(20);

        public WatchedTimers Time { get; } = new(Start, Delay);

        public StoreWriter Writer { get; }

        /// <summary>Released each time a batch has emptied the writer's queue (the next op then starts a wait).</summary>
        public SemaphoreSlim CaughtUp { get; } = new(0);

        /// <summary>Released each time the writer starts its gathering wait.</summary>
        public SemaphoreSlim Waiting => Time.Created;

        public async ValueTask DisposeAsync()
        {
            await Writer.StopAsync(CancellationToken.None);
            Writer.Dispose();
        }
    }

    /// <summary>A store whose writes each wait for the test (until it is opened), saying when one has come.</summary>
    private sealed class GatedStore(IStreamStore inner) : DelegatingStreamStore(inner)
    {
        private volatile bool _open;

        /// <summary>Released each time a write reaches the store.</summary>
        public SemaphoreSlim Entered { get; } = new(0);

        /// <summary>Released by the test to let one write through.</summary>
        public SemaphoreSlim Release { get; } = new(0);

        /// <summary>From now on every write goes through at once.</summary>
        public void Open()
        {
            _open = true;
            Release.Release();
        }

        public override async Task<bool[]> WriteAsync(IReadOnlyList<StreamWrite> writes, CancellationToken cancellationToken)
        {
            if (!_open)
            {
                Entered.Release();
                await Release.WaitAsync(cancellationToken);
            }

            return await base.WriteAsync(writes, cancellationToken);
        }
    }

    /// <summary>An upstream body over fixed bytes that counts its reads.</summary>
    private sealed class CountingStream(byte[] bytes) : MemoryStream(bytes)
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _reads);
            return base.ReadAsync(buffer, cancellationToken);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            return base.ReadAsync(buffer, offset, count, cancellationToken);
        }
    }

    private static byte[] Event(string text) => Encoding.UTF8.GetBytes($"data: {text}\n\n");

    /// <summary>Appends event 0 to the stream, its bytes referenced from here only weakly.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference<byte[]> AppendUnreferenced(StreamTee tee)
    {
        var bytes = Event("kept?");
        tee.Append(0, bytes);
        return new WeakReference<byte[]>(bytes);
    }

    /// <summary>Starts teeing stream m-{name} of session s-{name}.</summary>
    private StreamTee Open(string name) =>
        _writer.Open(new StreamRegistration("m-" + name, "s-" + name, "c010", "owner", "replica", Start.AddHours(1)));

    /// <summary>Queues a backlog (as after a stall of the store): stream "backlog" with <see cref="BacklogEvents"/> events.</summary>
    private StreamTee QueueBacklog()
    {
        var backlog = Open("backlog");
        for (var i = 0; i < BacklogEvents; i++)
        {
            backlog.Append(i, Event("b" + i));
        }

        return backlog;
    }
}
