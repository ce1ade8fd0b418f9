using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace Sidecar.Proxy;

internal static class ProxyServiceCollectionExtensions
{
    public const string ReverseProxySection = "ReverseProxy";
    public const string DefaultRouteId = "upstream-all";
    public const string DefaultClusterId = "upstream";

    /// <summary>
    /// YARP from the standard <c>ReverseProxy</c> section when it defines routes; otherwise one
    /// route that sends every path to <c>Sidecar:UpstreamUrl</c>.
    /// </summary>
    public static IServiceCollection AddSidecarProxy(this IServiceCollection services, IConfiguration configuration)
    {
        var proxy = services.AddReverseProxy();
        var section = configuration.GetSection(ReverseProxySection);
        if (section.GetSection("Routes").GetChildren().Any())
        {
            proxy.LoadFromConfig(section);
        }
        else
        {
            var options = configuration.GetSection(SidecarOptions.SectionName).Get<SidecarOptions>() ?? new SidecarOptions();
            var (routes, clusters) = DefaultConfig(options);
            proxy.LoadFromMemory(routes, clusters);
        }

        proxy.AddTransforms<ChatStreamTransform>();
        proxy.AddTransforms<ErrorBodyTransform>();
        services.AddSidecarOptions<Errors.ErrorNormalizationOptions>(Errors.ErrorNormalizationOptions.SectionName);

        // YARP needs data protection only for session-affinity cookies, which a sidecar that sits in
        // its upstream's pod has no use for: keep keys in memory rather than writing them to disk.
        services.AddDataProtection().UseEphemeralDataProtectionProvider();
        return services;
    }

    public static (IReadOnlyList<RouteConfig> Routes, IReadOnlyList<ClusterConfig> Clusters) DefaultConfig(SidecarOptions options)
    {
        var route = new RouteConfig
        {
            RouteId = DefaultRouteId,
            ClusterId = DefaultClusterId,
            Match = new RouteMatch { Path = "{**catch-all}" },
            // Append to the forwarding chain of the load balancer in front: the upstream rate-limits by client IP.
            Transforms = [new Dictionary<string, string> { ["X-Forwarded"] = "Append" }],
        };
        var cluster = new ClusterConfig
        {
            ClusterId = DefaultClusterId,
            Destinations = new Dictionary<string, DestinationConfig>
            {
                ["upstream"] = new() { Address = options.UpstreamUrl },
            },
            HttpRequest = new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig { ActivityTimeout = options.UpstreamTimeout },
        };
        return ([route], [cluster]);
    }

    /// <summary>The proxy pipeline: typed upstream errors, the chat streaming path, then YARP's own steps.</summary>
    public static void MapSidecarProxy(this WebApplication app) =>
        app.MapReverseProxy(pipeline =>
        {
            pipeline.UseMiddleware<UpstreamErrorMiddleware>();
            pipeline.UseMiddleware<ChatStreamMiddleware>();
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
}
