using Microsoft.Extensions.DependencyInjection;

namespace Sidecar.Telemetry;

internal static class TelemetryServiceCollectionExtensions
{
    public static IServiceCollection AddSidecarTelemetry(this IServiceCollection services)
    {
        services.AddMetrics();
        services.AddSingleton<SidecarMetrics>();
        return services;
    }
}
