using System.Net.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sidecar.Configuration;
using Sidecar.Streams.Store;

namespace Sidecar.Hosting;

/// <summary>
/// Ready only while Redis answers, when one is configured. A replica without Redis still streams
/// answers (without resume), so this is a choice: <see cref="HealthOptions.RedisRequiredForReady"/>.
/// </summary>
internal sealed class StoreHealthCheck(RedisConnection redis, IStreamStore store, IOptions<HealthOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!redis.IsConfigured)
        {
            return Task.FromResult(HealthCheckResult.Healthy("in-memory store"));
        }

        if (store.IsAvailable)
        {
            return Task.FromResult(HealthCheckResult.Healthy("Redis reachable"));
        }

        return Task.FromResult(options.Value.RedisRequiredForReady
            ? HealthCheckResult.Unhealthy("Redis unreachable")
            : HealthCheckResult.Degraded("Redis unreachable: answers stream without resume"));
    }
}

/// <summary>Ready only while the upstream (the chat service in the same pod) accepts connections; a TCP connect, time-boxed.</summary>
internal sealed class UpstreamHealthCheck(IOptionsMonitor<SidecarOptions> sidecar, IOptions<HealthOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!options.Value.CheckUpstream || !Uri.TryCreate(sidecar.CurrentValue.UpstreamUrl, UriKind.Absolute, out var upstream))
        {
            return HealthCheckResult.Healthy("not checked");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Value.UpstreamTimeout);
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(upstream.Host, upstream.Port, timeout.Token);
            return HealthCheckResult.Healthy("upstream accepts connections");
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy($"upstream {upstream.Host}:{upstream.Port} unreachable ({ex.GetType().Name})");
        }
    }
}

/// <summary>What <c>/readyz</c> checks (section <c>Sidecar:Health</c>).</summary>
public sealed class HealthOptions
{
    public const string SectionName = "Sidecar:Health";

    /// <summary>
    /// Not ready while Redis (when configured) is unreachable. Off (the default): reported as
    /// degraded and still ready, because answers stream without resume, and a shared Redis outage
    /// must not take every replica out of the Service at once.
    /// </summary>
    public bool RedisRequiredForReady { get; set; }

    /// <summary>Not ready while the upstream refuses connections.</summary>
    public bool CheckUpstream { get; set; } = true;

    /// <summary>How long the upstream connect may take.</summary>
    [System.ComponentModel.DataAnnotations.Range(typeof(TimeSpan), "00:00:00.050", "00:00:30")]
    public TimeSpan UpstreamTimeout { get; set; } = TimeSpan.FromSeconds(1);
}
