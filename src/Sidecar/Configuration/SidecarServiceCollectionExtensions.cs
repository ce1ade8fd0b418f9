using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sidecar.Hosting;
using Sidecar.Persistence;
using Sidecar.Proxy;
using Sidecar.Quota;
using Sidecar.Streams;
using Sidecar.Telemetry;

namespace Sidecar.Configuration;

/// <summary>Registers and maps the sidecar.</summary>
public static class SidecarServiceCollectionExtensions
{
    /// <summary>Adds the sidecar's services; each capability registers itself.</summary>
    public static IServiceCollection AddSidecar(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSidecarOptions<SidecarOptions>(SidecarOptions.SectionName);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SidecarOptions>, SidecarOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        services.AddSidecarHosting();
        services.AddSidecarTelemetry(configuration);
        // Before the streams: hosted services stop in reverse order, and the quota ledger must hear
        // the streams that end while they drain, as the acknowledgments must reach them (a callback
        // to another replica arrives through the store).
        services.AddSidecarQuota();
        services.AddSidecarPersistence();
        services.AddSidecarStreams();
        services.AddSidecarProxy(configuration);

        // Streams get their drain time at shutdown; the host must wait at least that long.
        services.AddOptions<HostOptions>().Configure<IOptions<StreamOptions>>((host, streams) =>
        {
            // The drain, then the last settlements reaching the outbox (their enqueue timeout).
            var needed = streams.Value.DrainTimeout + streams.Value.ShutdownDelay + TimeSpan.FromSeconds(15);
            if (host.ShutdownTimeout < needed)
            {
                host.ShutdownTimeout = needed;
            }
        });
        return services;
    }

    /// <summary>Binds a section, validates it at start-up, and names the failing key in the message.</summary>
    internal static OptionsBuilder<T> AddSidecarOptions<T>(this IServiceCollection services, string section)
        where T : class
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<T>>(new SectionValidator<T>(section)));
        return services.AddOptions<T>().BindConfiguration(section).ValidateOnStart();
    }

    /// <summary>Maps the management endpoints and the proxy.</summary>
    public static WebApplication MapSidecar(this WebApplication app)
    {
        app.MapSidecarHealth();
        app.MapAckEndpoint();
        app.MapSidecarMetrics();
        app.MapSidecarProxy();
        return app;
    }
}
