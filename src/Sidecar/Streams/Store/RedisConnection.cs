using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Sidecar.Streams.Store;

/// <summary>
/// The process's one Redis connection (<see cref="StreamStoreOptions.Redis"/>), shared by the stream
/// store and the quota outbox. Connects in the background at first use, starts even when Redis is
/// down and reconnects by itself when it returns; every call is time-boxed by
/// <see cref="StreamStoreOptions.OperationTimeout"/>.
/// </summary>
internal sealed class RedisConnection(IOptions<StreamStoreOptions> options) : IDisposable
{
    private readonly Lazy<Task<IConnectionMultiplexer>> _connection = new(() => ConnectAsync(options.Value));

    /// <summary>Whether a Redis connection is configured at all.</summary>
    public bool IsConfigured => !string.IsNullOrWhiteSpace(options.Value.Redis);

    /// <summary>The connection (connecting on first use).</summary>
    public Task<IConnectionMultiplexer> Connection => _connection.Value;

    public void Dispose()
    {
        if (_connection.IsValueCreated && _connection.Value.IsCompletedSuccessfully)
        {
            _connection.Value.Result.Dispose();
        }
    }

    private static async Task<IConnectionMultiplexer> ConnectAsync(StreamStoreOptions options)
    {
        var configuration = ConfigurationOptions.Parse(options.Redis!);
        configuration.AbortOnConnectFail = false;
        var milliseconds = (int)options.OperationTimeout.TotalMilliseconds;
        configuration.AsyncTimeout = milliseconds;
        configuration.SyncTimeout = milliseconds;
        configuration.ConnectTimeout = Math.Max(milliseconds, 1000);
        configuration.ClientName ??= "c010-sidecar";

        // Channels carry the key prefix already, and the store's write script publishes them by
        // name: a connection-level channel prefix, added only to this client's own subscribe and
        // publish calls, would leave followers deaf to the script's notices.
        configuration.ChannelPrefix = default;
        return await ConnectionMultiplexer.ConnectAsync(configuration);
    }
}
