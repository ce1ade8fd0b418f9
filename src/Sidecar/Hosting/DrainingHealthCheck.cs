using Microsoft.Extensions.Diagnostics.HealthChecks;
using Sidecar.Streams;

namespace Sidecar.Hosting;

/// <summary>Not ready once shutdown has begun, so that new chats go to other replicas.</summary>
internal sealed class DrainingHealthCheck(StreamPumps pumps) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(pumps.IsStopping
            ? HealthCheckResult.Unhealthy("draining")
            : HealthCheckResult.Healthy($"{pumps.ActiveCount} active streams"));
}
