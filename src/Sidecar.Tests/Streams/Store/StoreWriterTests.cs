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

    private readonly FakeTimeProvider _time = new(Start);
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().AddSingleton<SidecarMetrics>().BuildServiceProvider();
    private readonly InMemoryStreamStore _store;
    private readonly StoreWriter _writer;

    public StoreWriterTests()
    {
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

    public async ValueTask DisposeAsync()
    {
        await _writer.StopAsync(CancellationToken.None);
        _writer.Dispose();
        await _services.DisposeAsync();
    }

    private static byte[] Event(string text) => Encoding.UTF8.GetBytes($"data: {text}\n\n");
}
