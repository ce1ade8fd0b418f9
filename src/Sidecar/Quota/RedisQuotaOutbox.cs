using Microsoft.Extensions.Options;
using Sidecar.Streams.Store;
using StackExchange.Redis;

namespace Sidecar.Quota;

/// <summary>
/// The outbox in Redis, in one cluster slot (hash tag <c>{quota}</c>): <c>P:{quota}:due</c> (sorted
/// set: item key (the message id, or <c>save:</c> and it) by the time it is due; a claim moves it to the claim's end), <c>P:{quota}:items</c>
/// (hash: item key → the item's JSON), <c>P:{quota}:claims</c> (hash: item key → the replica
/// holding it), <c>P:{quota}:enqueued</c> (sorted set by enqueue time, for the oldest item's age).
/// These keys hold work that must not be lost, so they have no time to live; items leave them when
/// settled.
/// </summary>
internal sealed class RedisQuotaOutbox(RedisConnection redis, IOptions<StreamStoreOptions> options) : IQuotaOutbox
{
    // KEYS: due, items, enqueued. ARGV: id, json, now.
    private const string EnqueueScript = """
        if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
        return 1
        """;

    // KEYS: due, items, claims. ARGV: now, lease end, replica, max.
    private const string ClaimScript = """
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
        local out = {}
        for _, id in ipairs(ids) do
          local item = redis.call('HGET', KEYS[2], id)
          if item then
            redis.call('ZADD', KEYS[1], ARGV[2], id)
            redis.call('HSET', KEYS[3], id, ARGV[3])
            table.insert(out, item)
          else
            redis.call('ZREM', KEYS[1], id)
          end
        end
        return out
        """;

    // KEYS: due, items, claims, enqueued. ARGV: id, replica.
    private const string CompleteScript = """
        if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('HDEL', KEYS[2], ARGV[1])
        redis.call('HDEL', KEYS[3], ARGV[1])
        redis.call('ZREM', KEYS[4], ARGV[1])
        return 1
        """;

    // KEYS: due, items, claims. ARGV: id, replica, due at, json.
    private const string RescheduleScript = """
        if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
        redis.call('HDEL', KEYS[3], ARGV[1])
        return 1
        """;

    private RedisKey Due => $"{options.Value.KeyPrefix}:{{quota}}:due";

    private RedisKey Items => $"{options.Value.KeyPrefix}:{{quota}}:items";

    private RedisKey Claims => $"{options.Value.KeyPrefix}:{{quota}}:claims";

    private RedisKey Enqueued => $"{options.Value.KeyPrefix}:{{quota}}:enqueued";

    public async Task<bool> EnqueueAsync(QuotaItem item, CancellationToken cancellationToken)
    {
        var db = await DatabaseAsync(cancellationToken);
        var result = await db.ScriptEvaluateAsync(EnqueueScript, [Due, Items, Enqueued], [item.Key, item.ToJson(), item.EnqueuedAtMs]).WaitAsync(cancellationToken);
        return (int)result == 1;
    }

    public async Task<IReadOnlyList<QuotaItem>> ClaimAsync(string replicaId, DateTimeOffset now, DateTimeOffset leaseUntil, int max, CancellationToken cancellationToken)
    {
        var db = await DatabaseAsync(cancellationToken);
        var result = await db.ScriptEvaluateAsync(ClaimScript, [Due, Items, Claims],
            [now.ToUnixTimeMilliseconds(), leaseUntil.ToUnixTimeMilliseconds(), replicaId, max]).WaitAsync(cancellationToken);
        var items = new List<QuotaItem>();
        foreach (var json in (RedisResult[])result!)
        {
            if (QuotaItem.FromJson(json.ToString()) is { } item)
            {
                items.Add(item);
            }
        }

        return items;
    }

    public async Task<bool> CompleteAsync(string key, string replicaId, CancellationToken cancellationToken)
    {
        var db = await DatabaseAsync(cancellationToken);
        return (int)await db.ScriptEvaluateAsync(CompleteScript, [Due, Items, Claims, Enqueued], [key, replicaId]).WaitAsync(cancellationToken) == 1;
    }

    public async Task<bool> RescheduleAsync(QuotaItem item, string replicaId, DateTimeOffset dueAt, CancellationToken cancellationToken)
    {
        var db = await DatabaseAsync(cancellationToken);
        return (int)await db.ScriptEvaluateAsync(RescheduleScript, [Due, Items, Claims],
            [item.Key, replicaId, dueAt.ToUnixTimeMilliseconds(), item.ToJson()]).WaitAsync(cancellationToken) == 1;
    }

    public async Task<bool> ContainsAsync(string key, CancellationToken cancellationToken)
    {
        var db = await DatabaseAsync(cancellationToken);
        return await db.HashExistsAsync(Items, key).WaitAsync(cancellationToken);
    }

    public async Task<(long Depth, DateTimeOffset? Oldest)> StatsAsync(CancellationToken cancellationToken)
    {
        var db = await DatabaseAsync(cancellationToken);
        var depth = db.SortedSetLengthAsync(Enqueued);
        var oldest = db.SortedSetRangeByRankWithScoresAsync(Enqueued, 0, 0);
        await Task.WhenAll(depth, oldest).WaitAsync(cancellationToken);
        return (depth.Result, oldest.Result.Length == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)oldest.Result[0].Score));
    }

    private async Task<IDatabase> DatabaseAsync(CancellationToken cancellationToken) =>
        (await redis.Connection.WaitAsync(cancellationToken)).GetDatabase();
}
