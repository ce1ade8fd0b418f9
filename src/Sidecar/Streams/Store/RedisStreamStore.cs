using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Sidecar.Streams.Store;

/// <summary>
/// The shared store: one Redis Stream per message (one entry per write slice: one or several SSE
/// events, its id the last one's position plus one), a metadata hash, and the session's active-stream pointer. Keys carry a hash tag per
/// message (or session), so that they work on Redis Cluster; every key expires. Followers learn of
/// new events through pub/sub and read them with a range read.
/// </summary>
/// <remarks>
/// Layout, with P the key prefix: <c>P:{msg:ID}:events</c> (stream: entry <c>0-(N+1)</c> holds
/// the events up to N, in field <c>d</c>: one event's bytes, or, with field <c>n</c> listing their
/// lengths comma-separated, several events' bytes concatenated, the last of them N), <c>P:{msg:ID}:meta</c> (hash), <c>P:{sess:SID}:active</c> (string:
/// the message id), channel <c>P:{msg:ID}:notify</c>. One write batch is one pipelined round trip.
/// </remarks>
internal sealed class RedisStreamStore : IStreamStore
{
    private static readonly RedisValue Data = "d";
    private static readonly RedisValue Lengths = "n";

    // Producer writes of several streams that share a hash slot (all of them, outside a Cluster),
    // each applied atomically (see StreamWrite): one command per group instead of one per stream,
    // which matters when many streams each add an event or two per batch. Writes to a stream that
    // is unknown or no longer live change nothing: once a resumer has ended a lapsed stream, its
    // producer cannot append behind the ending. Events are appended only when they continue the
    // stream. A write sent again (its first attempt timed out, then landed late) applies only what
    // is missing, and counts as applied when the stream has already ended as it asks with all of its
    // events (not when a resumer ended it meanwhile with an ending of its own, unless that was a
    // failure too), or when it is a failed end alone (a recovery's: the stream ended either way).
    // KEYS: meta and events of each stream. ARGV: lifetime ms, retention ms, then per stream: begin
    // (1/0), lease ms (0: keep), incomplete (1/0), end state (-1: none), first sequence, wake the
    // followers (1/0), the number of events, then (with begin only) session, agent, owner,
    // replica, traceparent, then the events' lengths (comma-separated; empty for one event or
    // none) and their bytes, concatenated: one entry per slice (see ReadAsync). Returns one character 1/0 per stream (1:
    // everything applied), as one string: one reply object instead of one per stream. The wake-up
    // is published by the script itself, on the stream's notify channel (its meta key with
    // "notify" for "meta"), so followers never hear of a change before it is there.
    private const string WriteScript = """
        local lifetime, retention = ARGV[1], ARGV[2]
        local function write(meta, events, a, e, n)
          local first = tonumber(ARGV[a + 4])
          if ARGV[a] == '1' then
            redis.call('DEL', events)
            redis.call('HSET', meta, 'session', ARGV[a + 7], 'agent', ARGV[a + 8], 'owner', ARGV[a + 9], 'replica', ARGV[a + 10],
              'state', 0, 'lease', ARGV[a + 1], 'incomplete', 0, 'count', 0, 'trace', ARGV[a + 11])
            redis.call('PEXPIRE', meta, lifetime)
          end
          local known = redis.call('HMGET', meta, 'state', 'count')
          local state = known[1]
          if state ~= '0' then
            if state and ARGV[a + 3] ~= '-1' and (state == ARGV[a + 3] or (n == 0 and ARGV[a + 3] == '2'))
              and (n == 0 or tonumber(known[2]) == first + n) then return 1 end
            return 0
          end
          local applied = 1
          if n > 0 then
            local count = tonumber(known[2])
            if count < first or count > first + n then
              applied = 0
            elseif count < first + n then
              local lengths, data = ARGV[e + 1], ARGV[e + 2]
              if count > first then
                local kept, skip, i = {}, 0, 0
                for length in string.gmatch(lengths, '%d+') do
                  i = i + 1
                  if i <= count - first then skip = skip + tonumber(length) else kept[#kept + 1] = length end
                end
                data = string.sub(data, skip + 1)
                lengths = #kept > 1 and table.concat(kept, ',') or ''
              end
              if lengths == '' then
                redis.call('XADD', events, '0-' .. (first + n), 'd', data)
              else
                redis.call('XADD', events, '0-' .. (first + n), 'n', lengths, 'd', data)
              end
              redis.call('HSET', meta, 'count', first + n)
              if count == 0 then redis.call('PEXPIRE', events, lifetime) end
            end
          end
          if ARGV[a + 1] ~= '0' then redis.call('HSET', meta, 'lease', ARGV[a + 1]) end
          if ARGV[a + 2] == '1' then redis.call('HSET', meta, 'incomplete', 1) end
          if ARGV[a + 3] ~= '-1' then
            redis.call('HSET', meta, 'state', ARGV[a + 3])
            redis.call('PEXPIRE', meta, retention)
            redis.call('PEXPIRE', events, retention)
          end
          if ARGV[a + 5] == '1' then redis.call('PUBLISH', string.sub(meta, 1, -5) .. 'notify', '1') end
          return applied
        end
        local results, a = {}, 3
        for s = 1, #KEYS / 2 do
          local n = tonumber(ARGV[a + 6])
          local e = a + 6
          if ARGV[a] == '1' then e = e + 5 end
          results[s] = write(KEYS[2 * s - 1], KEYS[2 * s], a, e, n) == 1 and '1' or '0'
          a = e + 3
        end
        return table.concat(results)
        """;

    // A group of writes is one script call: bounded, so that a resume's reads are not held behind
    // a long one (Redis runs a script to its end). A write with more events than that (a burst of
    // one stream) is sent in slices, each a contiguous append. 16 KiB rather than 64: a resume
    // right after a 2,000-event burst answered 11-23% sooner; paced batches are unchanged (their
    // groups end at their 64 writes first), unpaced ones take more calls (0.41x against 0.44x
    // plain YARP's rate, in one run).
    private const int MaxGroupWrites = 64;
    private const int MaxGroupBytes = 16 * 1024;

    private const int MaxCachedWriteKeys = 100_000;

    private readonly ConcurrentDictionary<string, RedisKey[]> _writeKeys = new(StringComparer.Ordinal);

    // Ends a stream whose producer let its lease lapse, once: only while it is live, holds exactly
    // the events the caller saw, and its lease has passed. KEYS: meta, events. ARGV: event count,
    // now (ms), retention ms, the ending's bytes.
    private const string EndAbandonedScript = """
        local meta, events = KEYS[1], KEYS[2]
        if redis.call('HGET', meta, 'state') ~= '0' then return 0 end
        local count = tonumber(redis.call('HGET', meta, 'count'))
        if count ~= tonumber(ARGV[1]) then return 0 end
        if tonumber(redis.call('HGET', meta, 'lease') or '0') >= tonumber(ARGV[2]) then return 0 end
        redis.call('XADD', events, '0-' .. (count + 1), 'd', ARGV[4])
        redis.call('HSET', meta, 'count', count + 1, 'state', 2)
        redis.call('PEXPIRE', meta, ARGV[3])
        redis.call('PEXPIRE', events, ARGV[3])
        return 1
        """;

    private readonly Lazy<Task<IConnectionMultiplexer>> _connection;
    private readonly StreamStoreOptions _options;
    private readonly StreamOptions _streams;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Subscription> _subscriptions = new(StringComparer.Ordinal);

    private readonly RedisConnection _redis;

    public RedisStreamStore(RedisConnection redis, IOptions<StreamStoreOptions> options, IOptions<StreamOptions> streams, TimeProvider time)
    {
        _redis = redis;
        _options = options.Value;
        _streams = streams.Value;
        _time = time;
        _connection = new Lazy<Task<IConnectionMultiplexer>>(ConnectAsync);

        // Connect now, so that the first stream does not find the store "unavailable".
        _ = _connection.Value;
    }

    /// <summary>False only when Redis is known to be down; while the first connection is being made, writes wait for it.</summary>
    public bool IsAvailable => _connection.Value switch
    {
        { IsCompletedSuccessfully: true } connected => connected.Result.IsConnected,
        { IsCompleted: true } => false,
        _ => true,
    };

    public event Action? Unavailable;

    public event Action? Available;

    public event Action<string>? StopRequested;

    public async Task RequestStopAsync(string messageId, CancellationToken cancellationToken)
    {
        var connection = await _connection.Value.WaitAsync(cancellationToken);
        await connection.GetSubscriber().PublishAsync(StopChannel, messageId).WaitAsync(cancellationToken);
    }

    public event Action<string, string>? AckPublished;

    public async Task PublishAckAsync(string messageId, string ack, CancellationToken cancellationToken)
    {
        var connection = await _connection.Value.WaitAsync(cancellationToken);
        await connection.GetSubscriber().PublishAsync(AckChannel, messageId + "\n" + ack).WaitAsync(cancellationToken);
    }

    public async Task<bool[]> WriteAsync(IReadOnlyList<StreamWrite> writes, CancellationToken cancellationToken)
    {
        var connection = await _connection.Value.WaitAsync(cancellationToken);
        var batch = connection.GetDatabase().CreateBatch();
        var parts = Split(writes);
        var groups = new List<(List<int> Parts, Task<RedisResult> Result)>();
        var rented = new List<byte[]>();
        var pointers = new List<(int Write, Task Set)>();
        var lifetime = (long)(_streams.MaxDuration + _options.Retention).TotalMilliseconds;
        foreach (var group in Group(connection, writes, parts))
        {
            groups.Add((group, batch.ScriptEvaluateAsync(WriteScript, GroupKeys(writes, parts, group), GroupValues(writes, parts, group, lifetime, rented))));
            foreach (var p in group)
            {
                if (parts[p].First && writes[parts[p].Write].Begin is { } begin)
                {
                    // Another hash slot (the session's): a separate command.
                    pointers.Add((parts[p].Write, batch.StringSetAsync(ActiveKey(begin.SessionId), begin.MessageId, TimeSpan.FromMilliseconds(lifetime))));
                }

                if (parts[p].Last && writes[parts[p].Write].End is not null)
                {
                    // Its last write: the stream's keys are no longer needed here.
                    _writeKeys.TryRemove(writes[parts[p].Write].MessageId, out _);
                }
            }
        }

        batch.Execute();

        // A write applied when its last slice did: slices are contiguous appends, and the last
        // one applies only when everything before it is stored (sent again after a timeout, an
        // earlier slice may find its events already there, or the stream already ended by them).
        var applied = new bool[writes.Count];
        Exception? failed = null;
        foreach (var (group, result) in groups)
        {
            try
            {
                var each = (string?)await result.WaitAsync(cancellationToken);
                if (each?.Length != group.Count)
                {
                    // Not this script's answer: treated as a failed command (logged, sent again).
                    throw new RedisException($"The write script answered {each?.Length ?? 0} results for {group.Count} writes.");
                }

                for (var g = 0; g < group.Count; g++)
                {
                    var part = parts[group[g]];
                    if (part.Last)
                    {
                        applied[part.Write] = each[g] == '1';
                    }
                }
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // The command failed (a lost connection, the client's own timeout), which is not
                // the script refusing the write: the caller sends the batch again.
                failed ??= ex;
            }
        }

        if (failed is not null)
        {
            // Its buffers stay with the client, which may still send a timed-out command.
            throw new RedisException("A store write failed: " + failed.Message, failed);
        }

        // Every command was answered, so every argument was sent: the packed buffers are free.
        foreach (var buffer in rented)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        foreach (var (write, set) in pointers)
        {
            try
            {
                await set.WaitAsync(cancellationToken);
            }
            catch (RedisServerException)
            {
                // Refused (a permission, a full node): the session's pointer (another slot, on a
                // Cluster maybe another node) still names its previous stream, and a resume by the
                // session would not find this one. Sending it again would be refused again: its
                // write is not applied, so the stream loses resume and says so; the others stand.
                applied[write] = false;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // Not answered (a lost connection, a failover): the batch is sent again, as for a
                // failed script; its writes are idempotent, and the registration's carries every
                // event since it.
                throw new RedisException("A session pointer write failed: " + ex.Message, ex);
            }
        }

        return applied;
    }

    /// <summary>
    /// The writes as script slices: one per write, or several contiguous ones for a write whose
    /// events pass <see cref="MaxGroupBytes"/>; the first carries its registration, the last its end.
    /// </summary>
    private static List<Slice> Split(IReadOnlyList<StreamWrite> writes)
    {
        var slices = new List<Slice>(writes.Count);
        for (var i = 0; i < writes.Count; i++)
        {
            var events = writes[i].Events;
            var from = 0;
            do
            {
                var count = 0;
                long bytes = 0;
                while (from + count < events.Count && (count == 0 || bytes + events[from + count].Raw.Length <= MaxGroupBytes))
                {
                    bytes += events[from + count].Raw.Length;
                    count++;
                }

                slices.Add(new Slice(i, from, count, from == 0, from + count == events.Count, bytes));
                from += count;
            }
            while (from < events.Count);
        }

        return slices;
    }

    /// <summary>
    /// The slices in groups that one script call can take: same hash slot (every slice outside a
    /// Cluster), in batch order, bounded in count and bytes.
    /// </summary>
    private List<List<int>> Group(IConnectionMultiplexer connection, IReadOnlyList<StreamWrite> writes, List<Slice> slices)
    {
        var groups = new List<List<int>>();
        var open = new Dictionary<int, (List<int> Slices, long Bytes)>();
        for (var p = 0; p < slices.Count; p++)
        {
            var slot = connection.HashSlot(WriteKeys(writes[slices[p].Write].MessageId)[0]);
            var bytes = slices[p].Bytes;
            if (!open.TryGetValue(slot, out var group) || group.Slices.Count >= MaxGroupWrites || group.Bytes + bytes > MaxGroupBytes)
            {
                group = ([], 0);
                groups.Add(group.Slices);
            }

            group.Slices.Add(p);
            open[slot] = (group.Slices, group.Bytes + bytes);
        }

        return groups;
    }

    private RedisKey[] GroupKeys(IReadOnlyList<StreamWrite> writes, List<Slice> slices, List<int> group)
    {
        if (group.Count == 1)
        {
            return WriteKeys(writes[slices[group[0]].Write].MessageId);
        }

        var keys = new RedisKey[group.Count * 2];
        for (var g = 0; g < group.Count; g++)
        {
            WriteKeys(writes[slices[group[g]].Write].MessageId).CopyTo(keys, 2 * g);
        }

        return keys;
    }

    private RedisValue[] GroupValues(IReadOnlyList<StreamWrite> writes, List<Slice> slices, List<int> group, long lifetime, List<byte[]> rented)
    {
        const int PerSlice = 9, PerBegin = 5;
        var length = 2;
        foreach (var p in group)
        {
            var slice = slices[p];
            length += PerSlice + (slice.First && writes[slice.Write].Begin is not null ? PerBegin : 0);
        }

        var values = new RedisValue[length];
        values[0] = lifetime;
        values[1] = (long)_options.Retention.TotalMilliseconds;
        var a = 2;
        foreach (var p in group)
        {
            var slice = slices[p];
            var write = writes[slice.Write];
            var begin = slice.First ? write.Begin : null;
            var lease = write.Begin?.LeaseExpiresAt ?? write.RenewLeaseUntil;
            if (write.RenewLeaseUntil is { } renewed && lease < renewed)
            {
                lease = renewed;
            }

            values[a] = begin is null ? 0 : 1;
            values[a + 1] = lease?.ToUnixTimeMilliseconds() ?? 0;
            values[a + 2] = slice.Last && write.MarkIncomplete ? 1 : 0;
            values[a + 3] = slice.Last && write.End is { } end ? (int)end : -1;
            values[a + 4] = slice.Count > 0 ? write.Events[slice.From].Sequence : -1;
            // Lease renewals alone wake nobody: followers only care about events and state.
            values[a + 5] = begin is not null || slice.Count > 0 || (slice.Last && (write.End is not null || write.MarkIncomplete)) ? 1 : 0;
            values[a + 6] = slice.Count;
            a += PerSlice - 2;
            if (begin is not null)
            {
                values[a] = begin.SessionId;
                values[a + 1] = begin.AgentId;
                values[a + 2] = begin.OwnerHash;
                values[a + 3] = begin.ReplicaId;
                values[a + 4] = begin.TraceParent ?? string.Empty;
                a += PerBegin;
            }

            (values[a], values[a + 1]) = Pack(write.Events, slice, rented);
            a += 2;
        }

        return values;
    }

    /// <summary>
    /// A slice's events as one stream entry's values: their lengths (comma-separated, empty for a
    /// single event or none) and their bytes, concatenated. One entry per slice rather than one per
    /// event: Redis then spends on a burst one command, not one per event. The buffers are rented
    /// (added to <paramref name="rented"/>), for the caller to return once the command is answered.
    /// </summary>
    private static (RedisValue Lengths, RedisValue Data) Pack(List<StoredEvent> events, Slice slice, List<byte[]> rented)
    {
        switch (slice.Count)
        {
            case 0:
                return (RedisValue.EmptyString, RedisValue.EmptyString);
            case 1:
                return (RedisValue.EmptyString, events[slice.From].Raw);
        }

        var data = ArrayPool<byte>.Shared.Rent((int)slice.Bytes);
        rented.Add(data);
        var lengths = ArrayPool<byte>.Shared.Rent(slice.Count * 11);
        rented.Add(lengths);
        int offset = 0, written = 0;
        for (var e = slice.From; e < slice.From + slice.Count; e++)
        {
            var raw = events[e].Raw.Span;
            raw.CopyTo(data.AsSpan(offset));
            offset += raw.Length;
            if (written > 0)
            {
                lengths[written++] = (byte)',';
            }

            Utf8Formatter.TryFormat(raw.Length, lengths.AsSpan(written), out var digits);
            written += digits;
        }

        return ((ReadOnlyMemory<byte>)lengths.AsMemory(0, written), (ReadOnlyMemory<byte>)data.AsMemory(0, offset));
    }

    /// <summary>A stream's meta and events keys, kept while it is being written (one string each, not one per batch).</summary>
    private RedisKey[] WriteKeys(string messageId)
    {
        if (_writeKeys.TryGetValue(messageId, out var keys))
        {
            return keys;
        }

        if (_writeKeys.Count >= MaxCachedWriteKeys)
        {
            // Streams whose end was never written (it failed and was given up): start afresh.
            _writeKeys.Clear();
        }

        keys = [MetaKey(messageId), EventsKey(messageId)];
        _writeKeys[messageId] = keys;
        return keys;
    }

    public async Task<bool> EndAbandonedAsync(string messageId, long eventCount, ReadOnlyMemory<byte> ending, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var redis = await DatabaseAsync(cancellationToken);
        var result = await redis.ScriptEvaluateAsync(
            EndAbandonedScript,
            [MetaKey(messageId), EventsKey(messageId)],
            [eventCount, now.ToUnixTimeMilliseconds(), (long)_options.Retention.TotalMilliseconds, ending]).WaitAsync(cancellationToken);
        if ((int)result != 1)
        {
            return false;
        }

        try
        {
            await redis.PublishAsync(NotifyChannel(messageId), 1).WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The ending is stored: followers find it at their next poll. Failing here would have
            // the caller try again and find the stream no longer live, as if another had ended it.
        }

        return true;
    }

    public async Task<StreamRecord?> FindActiveAsync(string sessionId, CancellationToken cancellationToken) =>
        await FindActiveIdAsync(sessionId, cancellationToken) is { } messageId ? await GetAsync(messageId, cancellationToken) : null;

    public async Task<string?> FindActiveIdAsync(string sessionId, CancellationToken cancellationToken)
    {
        var redis = await DatabaseAsync(cancellationToken);
        var messageId = await redis.StringGetAsync(ActiveKey(sessionId)).WaitAsync(cancellationToken);
        return messageId.IsNullOrEmpty ? null : messageId.ToString();
    }

    public async Task<StreamRecord?> GetAsync(string messageId, CancellationToken cancellationToken)
    {
        var redis = await DatabaseAsync(cancellationToken);
        var fields = await redis.HashGetAllAsync(MetaKey(messageId)).WaitAsync(cancellationToken);
        if (fields.Length == 0)
        {
            return null;
        }

        var meta = fields.ToDictionary(f => f.Name.ToString(), f => f.Value, StringComparer.Ordinal);
        string Text(string name) => meta.TryGetValue(name, out var v) ? v.ToString() : string.Empty;
        long Number(string name) => meta.TryGetValue(name, out var v) && v.TryParse(out long n) ? n : 0;
        return new StreamRecord(
            messageId,
            Text("session"),
            Text("agent"),
            Text("owner"),
            (StoredStreamState)Number("state"),
            Number("count"),
            Text("replica"),
            DateTimeOffset.FromUnixTimeMilliseconds(Number("lease")),
            Incomplete: Number("incomplete") != 0,
            TraceParent: Text("trace") is { Length: > 0 } trace ? trace : null);
    }

    // ReadAsync's two ranges, only for the stream's owner. KEYS: meta, events. ARGV: owner, the
    // first range's ids and count, the second's first id. Returns nil for anyone else.
    private const string ReadIfOwnedScript = """
        if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
        return {redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[3], 'COUNT', ARGV[4]), redis.call('XRANGE', KEYS[2], ARGV[5], '+', 'COUNT', 1)}
        """;

    public async Task<IReadOnlyList<StoredEvent>> ReadIfOwnedAsync(string messageId, string ownerHash, long fromSequence, int maxCount, CancellationToken cancellationToken)
    {
        var from = Math.Max(0, fromSequence);
        if (maxCount <= 0 || from > long.MaxValue - 2 - maxCount)
        {
            return [];
        }

        var end = from + maxCount;
        var redis = await DatabaseAsync(cancellationToken);
        var result = await redis.ScriptEvaluateAsync(
            ReadIfOwnedScript,
            [MetaKey(messageId), EventsKey(messageId)],
            [ownerHash, EntryId(from), EntryId(end - 1), maxCount, EntryId(end)]).WaitAsync(cancellationToken);
        if (result.IsNull)
        {
            return [];
        }

        var ranges = (RedisResult[])result!;
        return Merge(Entries(ranges[0]), Entries(ranges[1]), from, end, maxCount);

        static StreamEntry[] Entries(RedisResult range) => [.. ((RedisResult[])range!).Select(entry =>
        {
            var parts = (RedisResult[])entry!;
            var fields = (RedisResult[])parts[1]!;
            var values = new NameValueEntry[fields.Length / 2];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = new NameValueEntry((RedisValue)fields[2 * i], (RedisValue)fields[(2 * i) + 1]);
            }

            return new StreamEntry((RedisValue)parts[0], values);
        })];
    }

    public async Task<IReadOnlyList<StoredEvent>> ReadAsync(string messageId, long fromSequence, int maxCount, CancellationToken cancellationToken)
    {
        // An entry's id is its last event's position plus one, so the entries that end inside the
        // window [from, end) are one id range; the entry after them may hold the window's last
        // events (or its first, when one entry spans the whole window). Both in one round trip.
        var from = Math.Max(0, fromSequence);
        if (maxCount <= 0 || from > long.MaxValue - 2 - maxCount)
        {
            // No positions, or none a stream can reach (and whose entry ids would overflow).
            return [];
        }

        var end = from + maxCount;
        var redis = await DatabaseAsync(cancellationToken);
        var batch = redis.CreateBatch();
        var key = EventsKey(messageId);
        var inside = batch.StreamRangeAsync(key, minId: EntryId(from), maxId: EntryId(end - 1), count: maxCount);
        var after = batch.StreamRangeAsync(key, minId: EntryId(end), maxId: "+", count: 1);
        batch.Execute();
        // Both awaited together, so that a failure of one never leaves the other unobserved.
        await Task.WhenAll(inside, after).WaitAsync(cancellationToken);
        return Merge(inside.Result, after.Result, from, end, maxCount);
    }

    /// <summary>
    /// The events in [<paramref name="from"/>, <paramref name="end"/>) of the entries that end in
    /// the window and of the entry after them, as long as they run on without a hole. The two
    /// ranges are read one after the other, and a producer may append between them: the entry
    /// after is then not the one that follows the first range's, and is left for the next read
    /// (its events would come after a gap).
    /// </summary>
    internal static List<StoredEvent> Merge(StreamEntry[] entries, StreamEntry[] next, long from, long end, int maxCount)
    {
        var events = new List<StoredEvent>(Math.Min(maxCount, 1024));
        foreach (var entry in entries)
        {
            Unpack(entry, from, end, events);
        }

        if (next.Length > 0)
        {
            var count = events.Count;
            Unpack(next[0], from, end, events);
            var expected = count == 0 ? from : events[count - 1].Sequence + 1;
            if (events.Count > count && events[count].Sequence != expected)
            {
                events.RemoveRange(count, events.Count - count);
            }
        }

        return events;
    }

    /// <summary>
    /// Adds an entry's events that fall in [<paramref name="from"/>, <paramref name="end"/>) to
    /// <paramref name="events"/> (slices of the entry's one buffer: no copy per event).
    /// </summary>
    private static void Unpack(StreamEntry entry, long from, long end, List<StoredEvent> events)
    {
        var id = entry.Id.ToString();
        var last = long.Parse(id.AsSpan(id.IndexOf('-') + 1), NumberStyles.None, CultureInfo.InvariantCulture) - 1;
        var value = entry[Data];
        if (value.IsNull)
        {
            throw new RedisException($"Stream entry {id} has no data.");
        }

        var data = (ReadOnlyMemory<byte>)value;
        var lengths = entry[Lengths];
        if (lengths.IsNullOrEmpty)
        {
            if (last >= from && last < end)
            {
                events.Add(new StoredEvent(last, data));
            }

            return;
        }

        var sizes = ((ReadOnlyMemory<byte>)lengths).Span;
        var sequence = last - sizes.Count((byte)',');
        if (sequence < 0)
        {
            throw new RedisException($"Stream entry {id} lists more lengths than it can hold events.");
        }

        var offset = 0;
        foreach (var range in sizes.Split((byte)','))
        {
            var size = sizes[range];
            if (!Utf8Parser.TryParse(size, out int length, out var used) || used != size.Length || length < 0 || length > data.Length - offset)
            {
                throw new RedisException($"Stream entry {id} has lengths that do not match its data.");
            }

            if (sequence >= from && sequence < end)
            {
                events.Add(new StoredEvent(sequence, data.Slice(offset, length)));
            }

            offset += length;
            sequence++;
        }

        if (offset != data.Length)
        {
            throw new RedisException($"Stream entry {id} has lengths that do not match its data.");
        }
    }

    public async Task<IStreamFollower> FollowAsync(string messageId, CancellationToken cancellationToken)
    {
        var subscription = await SubscribeAsync(messageId, cancellationToken);
        return new Follower(this, messageId, subscription);
    }

    private async Task<IDatabase> DatabaseAsync(CancellationToken cancellationToken) =>
        (await _connection.Value.WaitAsync(cancellationToken)).GetDatabase();

    private async Task<IConnectionMultiplexer> ConnectAsync()
    {
        var connection = await _redis.Connection;
        // Writes and reads go on the interactive connection; the subscription connection fails and
        // comes back on its own schedule (followers then poll), so it does not make streams being
        // written lose resume.
        connection.ConnectionFailed += (_, e) =>
        {
            if (e.ConnectionType == ConnectionType.Interactive)
            {
                Unavailable?.Invoke();
            }
        };
        connection.ConnectionRestored += (_, e) =>
        {
            if (e.ConnectionType == ConnectionType.Interactive)
            {
                Available?.Invoke();
            }
        };

        // Stops and save acknowledgments are heard by every replica; the one producing the stream acts on them. The
        // subscription is re-established by the client after a reconnect.
        try
        {
            var stops = await connection.GetSubscriber().SubscribeAsync(StopChannel);
            stops.OnMessage(message => StopRequested?.Invoke(message.Message.ToString()));
            var acks = await connection.GetSubscriber().SubscribeAsync(AckChannel);
            acks.OnMessage(message =>
            {
                var text = message.Message.ToString();
                var newline = text.IndexOf('\n', StringComparison.Ordinal);
                if (newline > 0)
                {
                    AckPublished?.Invoke(text[..newline], text[(newline + 1)..]);
                }
            });
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Redis is down at start: the client subscribes again once it connects.
        }

        return connection;
    }

    private async Task<Subscription> SubscribeAsync(string messageId, CancellationToken cancellationToken)
    {
        while (true)
        {
            var subscription = _subscriptions.GetOrAdd(messageId, _ => new Subscription());
            lock (subscription)
            {
                if (subscription.Closed)
                {
                    continue;
                }

                subscription.Waiters++;
            }

            try
            {
                await subscription.EnsureSubscribedAsync(await _connection.Value.WaitAsync(cancellationToken), NotifyChannel(messageId)).WaitAsync(cancellationToken);
                return subscription;
            }
            catch
            {
                await ReleaseAsync(messageId, subscription);
                throw;
            }
        }
    }

    private async Task ReleaseAsync(string messageId, Subscription subscription)
    {
        lock (subscription)
        {
            if (--subscription.Waiters > 0)
            {
                return;
            }

            subscription.Closed = true;
        }

        _subscriptions.TryRemove(new KeyValuePair<string, Subscription>(messageId, subscription));
        await subscription.UnsubscribeAsync();
    }

    private RedisChannel AckChannel => RedisChannel.Literal($"{_options.KeyPrefix}:control:ack");

    private RedisChannel StopChannel => RedisChannel.Literal($"{_options.KeyPrefix}:control:stop");

    private RedisKey MetaKey(string messageId) => $"{_options.KeyPrefix}:{{msg:{messageId}}}:meta";

    private RedisKey EventsKey(string messageId) => $"{_options.KeyPrefix}:{{msg:{messageId}}}:events";

    private RedisKey ActiveKey(string sessionId) => $"{_options.KeyPrefix}:{{sess:{sessionId}}}:active";

    private RedisChannel NotifyChannel(string messageId) => RedisChannel.Literal($"{_options.KeyPrefix}:{{msg:{messageId}}}:notify");

    private static RedisValue EntryId(long sequence) => "0-" + (sequence + 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>One follower: holds the stream's shared subscription until disposed.</summary>
    private sealed class Follower(RedisStreamStore store, string messageId, Subscription subscription) : IStreamFollower
    {
        private int _disposed;

        public long Mark => subscription.Version;

        public async Task WaitAsync(long mark, TimeSpan timeout, CancellationToken cancellationToken)
        {
            // Changed is taken before the version is compared: a message in between ends the wait.
            var changed = subscription.Changed;
            if (subscription.Version != mark)
            {
                return;
            }

            await changed.WaitAsync(timeout, store._time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancellationToken.ThrowIfCancellationRequested();
        }

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                await store.ReleaseAsync(messageId, subscription);
            }
        }
    }

    /// <summary>One pub/sub subscription shared by every local follower of a stream.</summary>
    private sealed class Subscription
    {
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Task<ChannelMessageQueue>? _queue;

        public int Waiters { get; set; }

        public bool Closed { get; set; }

        private long _version;

        public Task Changed => Volatile.Read(ref _changed).Task;

        public long Version => Interlocked.Read(ref _version);

        public Task<ChannelMessageQueue> EnsureSubscribedAsync(IConnectionMultiplexer connection, RedisChannel channel)
        {
            lock (this)
            {
                // A subscription that failed (Redis away) is tried again by the next waiter.
                if (_queue is { IsFaulted: true } or { IsCanceled: true })
                {
                    _queue = null;
                }

                _queue ??= SubscribeAsync(connection, channel);
                return _queue;
            }
        }

        public async Task UnsubscribeAsync()
        {
            Task<ChannelMessageQueue>? queue;
            lock (this)
            {
                queue = _queue;
            }

            if (queue is not null)
            {
                try
                {
                    await (await queue).UnsubscribeAsync();
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    // Redis is away: the subscription went with the connection.
                }
            }
        }

        private async Task<ChannelMessageQueue> SubscribeAsync(IConnectionMultiplexer connection, RedisChannel channel)
        {
            var queue = await connection.GetSubscriber().SubscribeAsync(channel);
            queue.OnMessage(_ =>
            {
                Interlocked.Increment(ref _version);
                Interlocked.Exchange(ref _changed, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            });
            return queue;
        }
    }

    /// <summary>Events [From, From + Count) of write Write, sent as one script slice.</summary>
    private readonly record struct Slice(int Write, int From, int Count, bool First, bool Last, long Bytes);
}
