using Microsoft.Extensions.Options;
using Sidecar.Quota;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Quota;

/// <summary>What every <see cref="IQuotaOutbox"/> must do; each implementation runs this suite.</summary>
public abstract class QuotaOutboxContractTests
{
    protected static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    internal abstract IQuotaOutbox Outbox { get; }

    [Fact]
    public async Task Enqueue_TheFirstSettlementOfAReservationStands()
    {
        var id = NewId();

        Assert.True(await Outbox.EnqueueAsync(Item(id, QuotaAction.Release), default));
        Assert.False(await Outbox.EnqueueAsync(Item(id, QuotaAction.Confirm), default));

        var claimed = await Outbox.ClaimAsync("a", Now, Now.AddSeconds(30), 100, default);
        Assert.Equal(QuotaAction.Release, claimed.Single(i => i.MessageId == id).Action);
    }

    [Fact]
    public async Task Claim_AnItemIsHeldByOneReplicaUntilItsLeaseLapses()
    {
        var id = NewId();
        await Outbox.EnqueueAsync(Item(id, QuotaAction.Confirm), default);

        var first = await Outbox.ClaimAsync("a", Now, Now.AddSeconds(30), 100, default);
        var meanwhile = await Outbox.ClaimAsync("b", Now.AddSeconds(29), Now.AddSeconds(59), 100, default);
        var afterLapse = await Outbox.ClaimAsync("b", Now.AddSeconds(30), Now.AddSeconds(60), 100, default);

        Assert.Contains(first, i => i.MessageId == id);
        Assert.DoesNotContain(meanwhile, i => i.MessageId == id);
        Assert.Contains(afterLapse, i => i.MessageId == id);
        // The replica that lost its claim can no longer complete the item; the new holder can.
        Assert.False(await Outbox.CompleteAsync(QuotaItem.SettlementKey(id), "a", default));
        Assert.True(await Outbox.CompleteAsync(QuotaItem.SettlementKey(id), "b", default));
        Assert.False(await Outbox.ContainsAsync(QuotaItem.SettlementKey(id), default));
    }

    [Fact]
    public async Task Reschedule_PutsTheItemBackWithItsAttempts_DueLater()
    {
        var id = NewId();
        await Outbox.EnqueueAsync(Item(id, QuotaAction.Release), default);
        var item = (await Outbox.ClaimAsync("a", Now, Now.AddSeconds(30), 100, default)).Single(i => i.MessageId == id);

        Assert.True(await Outbox.RescheduleAsync(item with { Attempts = 3 }, "a", Now.AddSeconds(8), default));
        Assert.False(await Outbox.RescheduleAsync(item, "b", Now, default));

        Assert.DoesNotContain(await Outbox.ClaimAsync("b", Now.AddSeconds(7), Now.AddSeconds(37), 100, default), i => i.MessageId == id);
        var again = (await Outbox.ClaimAsync("b", Now.AddSeconds(8), Now.AddSeconds(38), 100, default)).Single(i => i.MessageId == id);
        Assert.Equal(3, again.Attempts);
    }

    [Fact]
    public async Task SettlementAndSaveRepairOfOneMessage_AreSeparateItems_EvenForIdsThatLookLikeKeys()
    {
        var id = NewId();

        Assert.True(await Outbox.EnqueueAsync(Item(id, QuotaAction.Release), default));
        Assert.True(await Outbox.EnqueueAsync(Item(id, QuotaAction.Save) with { Payload = "{}" }, default));
        Assert.True(await Outbox.EnqueueAsync(Item("save:" + id, QuotaAction.Release), default));

        var claimed = await Outbox.ClaimAsync("a", Now, Now.AddSeconds(30), 100, default);
        Assert.Equal(3, claimed.Count(i => i.MessageId.EndsWith(id, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Stats_CountTheItemsAndTheOldest()
    {
        var before = await Outbox.StatsAsync(default);
        var id = NewId();
        await Outbox.EnqueueAsync(Item(id, QuotaAction.Release) with { EnqueuedAtMs = Now.AddMinutes(-10).ToUnixTimeMilliseconds() }, default);

        var (depth, oldest) = await Outbox.StatsAsync(default);

        Assert.Equal(before.Depth + 1, depth);
        Assert.True(oldest <= Now.AddMinutes(-10));
    }

    protected static string NewId() => "m" + Guid.NewGuid().ToString("N")[..16];

    private static QuotaItem Item(string id, QuotaAction action) => new(id, action, "test", "s1", Now.ToUnixTimeMilliseconds());
}

public sealed class InMemoryQuotaOutboxTests : QuotaOutboxContractTests
{
    internal override IQuotaOutbox Outbox { get; } = new InMemoryQuotaOutbox();
}

public sealed class RedisQuotaOutboxTests : QuotaOutboxContractTests, IDisposable
{
    private readonly RedisConnection _redis;

    public RedisQuotaOutboxTests()
    {
        var options = Options.Create(new StreamStoreOptions { Redis = RedisServer.Configuration, KeyPrefix = RedisServer.NewPrefix() });
        _redis = new RedisConnection(options);
        Outbox = new RedisQuotaOutbox(_redis, options);
    }

    internal override IQuotaOutbox Outbox { get; }

    public void Dispose() => _redis.Dispose();
}

public sealed class RedisClusterQuotaOutboxTests : QuotaOutboxContractTests, IDisposable
{
    private readonly RedisConnection _redis;

    public RedisClusterQuotaOutboxTests()
    {
        var options = Options.Create(new StreamStoreOptions { Redis = RedisCluster.Configuration, KeyPrefix = RedisServer.NewPrefix() });
        _redis = new RedisConnection(options);
        Outbox = new RedisQuotaOutbox(_redis, options);
    }

    internal override IQuotaOutbox Outbox { get; }

    public void Dispose() => _redis.Dispose();
}
