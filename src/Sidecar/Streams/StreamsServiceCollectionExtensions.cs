using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sidecar.Configuration;
using Sidecar.Streams.Store;

namespace Sidecar.Streams;

internal static class StreamsServiceCollectionExtensions
{
    public static IServiceCollection AddSidecarStreams(this IServiceCollection services)
    {
        services.AddSidecarOptions<StreamOptions>(StreamOptions.SectionName);
        services.AddSidecarOptions<ResumeOptions>(ResumeOptions.SectionName);
        services.AddSidecarOptions<StreamStoreOptions>(StreamStoreOptions.SectionName);
        services.AddSingleton<SidecarReplica>();
        services.AddSingleton<RedisConnection>();
        // Redis when a connection is configured (shared by every replica), else this process's memory.
        services.AddSingleton<IStreamStore>(sp =>
        {
            IStreamStore store = string.IsNullOrWhiteSpace(sp.GetRequiredService<IOptions<StreamStoreOptions>>().Value.Redis)
                ? ActivatorUtilities.CreateInstance<InMemoryStreamStore>(sp)
                : ActivatorUtilities.CreateInstance<RedisStreamStore>(sp);

            // The availability gauge reads the store that is in use.
            sp.GetRequiredService<Telemetry.SidecarMetrics>().StoreAvailable = () => store.IsAvailable;
            return store;
        });

        // The upstream reads' buffers, shared by every pump; the gauge reads how many are kept.
        services.AddSingleton(sp =>
        {
            var pool = new UpstreamBufferPool();
            sp.GetRequiredService<Telemetry.SidecarMetrics>().ReadBuffersRetained = () => pool.Retained;
            pool.StartTrimming(sp.GetRequiredService<TimeProvider>());
            return pool;
        });

        // Hosted services stop in reverse order: the store writer after the pumps, so that what
        // the pumps write while they drain still reaches the store.
        services.AddSingleton<StoreWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<StoreWriter>());
        services.AddSingleton<StreamPumps>();
        services.AddHostedService(sp => sp.GetRequiredService<StreamPumps>());
        services.AddSingleton<StoreReplay>();
        services.AddSingleton<LiveClient>();
        services.AddSingleton<StreamAccess>();
        services.AddSingleton<ResumeTokenVerifier>();
        services.AddHttpClient(ResumeTokenVerifier.HttpClientName, client => client.MaxResponseContentBufferSize = 1024 * 1024);
        services.AddSingleton<ResumeEndpoint>();
        services.AddSingleton<StopEndpoint>();
        return services;
    }
}
