using Microsoft.Extensions.DependencyInjection;

namespace Sidecar.Streams;

internal static class StreamsServiceCollectionExtensions
{
    public static IServiceCollection AddSidecarStreams(this IServiceCollection services)
    {
        services.AddOptions<StreamOptions>()
            .BindConfiguration(StreamOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddSingleton<StreamPumps>();
        services.AddHostedService(sp => sp.GetRequiredService<StreamPumps>());
        services.AddSingleton<LiveClient>();
        return services;
    }
}
