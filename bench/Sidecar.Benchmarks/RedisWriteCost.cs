using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Options;
using Sidecar.Bench;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using StackExchange.Redis;

namespace Sidecar.Benchmarks;

/// <summary>
/// What one stream write costs Redis and the client, through the real Redis store (its write
/// script and argument builder), without the rest of the machine's load: a batch of writes of
/// <c>streams</c> streams with <c>events</c> events each, one batch at a time (as the store writer
/// sends them), against a <c>redis-server</c> of its own. Prints Redis's process CPU, the script's
/// time and its commands' times (<c>INFO commandstats</c>), and this process's CPU, per stream write.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project bench/Sidecar.Benchmarks -- redis-writes [streams] [events] [batches]</c>.
/// At 200 streams paced 10 ms, a batch carries about 25 streams with one event each (the default).
/// </remarks>
internal static class RedisWriteCost
{
    public static async Task RunAsync(string[] args)
    {
        var streams = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 25;
        var events = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1;
        var batches = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 8000;
        var port = ChildProcess.FreePort();
        using var redis = ChildProcess.StartRedis(port);
        try
        {
            var storeOptions = Options.Create(new StreamStoreOptions { Redis = $"127.0.0.1:{port},allowAdmin=true" });
            using var connection = new RedisConnection(storeOptions);
            var store = new RedisStreamStore(connection, storeOptions, Options.Create(new StreamOptions()), TimeProvider.System);
            var server = await ConnectAsync(connection, port);
            var raw = Encoding.UTF8.GetBytes("data: {\"type\":\"text-delta\",\"id\":\"txt_0\",\"delta\":\"" + new string('x', 50) + "\"}\n\n");
            var ids = Enumerable.Range(0, streams).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
            await store.WriteAsync([.. ids.Select(id => new StreamWrite(id)
            {
                Begin = new StreamRegistration(id, "s" + id, "c010", "owner", "bench", DateTimeOffset.UtcNow.AddHours(1)),
            })], CancellationToken.None);

            long next = 0;
            async Task WriteBatchesAsync(int count)
            {
                for (var b = 0; b < count; b++, next += events)
                {
                    var writes = new StreamWrite[streams];
                    for (var s = 0; s < streams; s++)
                    {
                        writes[s] = new StreamWrite(ids[s]);
                        for (var e = 0; e < events; e++)
                        {
                            writes[s].Events.Add(new StoredEvent(next + e, raw));
                        }
                    }

                    var applied = await store.WriteAsync(writes, CancellationToken.None);
                    if (applied.Any(a => !a))
                    {
                        throw new InvalidOperationException("A write was not applied.");
                    }
                }
            }

            await WriteBatchesAsync(Math.Max(100, batches / 10));
            await server.ExecuteAsync("CONFIG", "RESETSTAT");
            var redisCpu = ChildProcess.CpuTimeOf(redis);
            var ownCpu = ChildProcess.CpuTimeOf(Process.GetCurrentProcess());
            var clock = Stopwatch.StartNew();
            await WriteBatchesAsync(batches);
            clock.Stop();
            var redisUsed = ChildProcess.CpuTimeOf(redis) - redisCpu;
            var ownUsed = ChildProcess.CpuTimeOf(Process.GetCurrentProcess()) - ownCpu;
            var writesDone = (double)streams * batches;

            Console.WriteLine($"{streams} streams x {events} event(s) per batch, {batches} batches in {clock.Elapsed.TotalSeconds:F1} s ({writesDone * events / clock.Elapsed.TotalSeconds:N0} events/s)");
            Console.WriteLine($"per stream write: Redis process CPU {redisUsed.TotalMicroseconds / writesDone:F2} µs, this process's CPU {ownUsed.TotalMicroseconds / writesDone:F2} µs");
            var stats = (string)(await server.ExecuteAsync("INFO", "commandstats"))!;
            foreach (var line in stats.Split('\n', StringSplitOptions.TrimEntries).Where(l => l.StartsWith("cmdstat_", StringComparison.Ordinal) && !l.StartsWith("cmdstat_config", StringComparison.Ordinal)))
            {
                var name = line["cmdstat_".Length..line.IndexOf(':', StringComparison.Ordinal)];
                var calls = long.Parse(Field(line, "calls"), CultureInfo.InvariantCulture);
                var usec = long.Parse(Field(line, "usec"), CultureInfo.InvariantCulture);
                Console.WriteLine($"  {name,-10} {calls / writesDone,6:F2} calls, {usec / writesDone:F3} µs per stream write");
            }
        }
        finally
        {
            redis.Kill();
            await redis.WaitForExitAsync();
        }
    }

    private static async Task<IDatabase> ConnectAsync(RedisConnection connection, int port)
    {
        // The server may still be starting: the connection retries by itself.
        var multiplexer = await connection.Connection;
        var clock = Stopwatch.StartNew();
        while (!multiplexer.IsConnected)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(10))
            {
                throw new InvalidOperationException($"redis-server on port {port} did not start.");
            }

            await Task.Delay(50);
        }

        return multiplexer.GetDatabase();
    }

    private static string Field(string line, string name)
    {
        var start = line.IndexOf(name + "=", StringComparison.Ordinal) + name.Length + 1;
        var end = line.IndexOf(',', start);
        return end < 0 ? line[start..] : line[start..end];
    }
}
