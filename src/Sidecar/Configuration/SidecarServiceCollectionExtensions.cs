using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Sidecar.Hosting;
using Sidecar.Proxy;
using Sidecar.Streams;
using Sidecar.Telemetry;

namespace Sidecar.Configuration;

/// <summary>Registers and maps the sidecar.</summary>
public static class SidecarServiceCollectionExtensions
{
    /// <summary>Adds the sidecar's services; each capability registers itself.</summary>
    public static IServiceCollection AddSidecar(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SidecarOptions>()
            .BindConfiguration(SidecarOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SidecarOptions>, SidecarOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        services.AddSidecarHosting();
        services.AddSidecarTelemetry();
        services.AddSidecarStreams();
        services.AddSidecarProxy(configuration);
        return services;
    }

    /// <summary>Maps the management endpoints and the proxy.</summary>
    public static WebApplication MapSidecar(this WebApplication app)
    {
        app.MapSidecarHealth();
        app.MapSidecarProxy();
        return app;
    }
}
