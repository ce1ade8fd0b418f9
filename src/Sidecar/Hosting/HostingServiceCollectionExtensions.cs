using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sidecar.Configuration;

namespace Sidecar.Hosting;

internal static class HostingServiceCollectionExtensions
{
    public const string ReadyTag = "ready";

    /// <summary>The two listeners, the policy that keeps them apart, and the health checks.</summary>
    public static IServiceCollection AddSidecarHosting(this IServiceCollection services)
    {
        services.AddSingleton<SidecarListeners>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<MatcherPolicy, ManagementPortPolicy>());
        services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<SidecarOptions>, SidecarListeners, Telemetry.SidecarMetrics>((kestrel, options, listeners, metrics) =>
            {
                var listen = options.Value.Listen;
                var address = IPAddress.TryParse(listen.Address, out var parsed) ? parsed : IPAddress.Any;
                listeners.Bind(kestrel, address, listen.PublicPort, listen.ManagementPort, listen.MaxConnections, metrics.ConnectionRejected);

                // Limits against clients that hold connections without sending (slow loris); the
                // request body's minimum data rate is Kestrel's default (240 bytes/s after 5 s).
                kestrel.Limits.RequestHeadersTimeout = listen.RequestHeadersTimeout;
                kestrel.Limits.KeepAliveTimeout = listen.KeepAliveTimeout;
            });

        services.AddSidecarOptions<HealthOptions>(HealthOptions.SectionName);
        services.AddHealthChecks()
            .AddCheck<DrainingHealthCheck>("draining", tags: [ReadyTag])
            .AddCheck<StoreHealthCheck>("store", tags: [ReadyTag])
            .AddCheck<UpstreamHealthCheck>("upstream", tags: [ReadyTag]);
        return services;
    }

    /// <summary><c>/healthz</c> (the process answers) and <c>/readyz</c> (it should get traffic), on the management port.</summary>
    public static void MapSidecarHealth(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false }).RequireManagementPort();
        endpoints.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag) }).RequireManagementPort();
    }
}
