using Microsoft.Extensions.DependencyInjection;
using Sidecar.Configuration;

namespace Sidecar.Streams;

internal static class StreamsServiceCollectionExtensions
{
    public static IServiceCollection AddSidecarStreams(this IServiceCollection services)
    {
        services.AddSidecarOptions<StreamOptions>(StreamOptions.SectionName);
        services.AddSingleton<StreamPumps>();
        services.AddHostedService(sp => sp.GetRequiredService<StreamPumps>());
        services.AddSingleton<LiveClient>();
        return services;
    }
}
