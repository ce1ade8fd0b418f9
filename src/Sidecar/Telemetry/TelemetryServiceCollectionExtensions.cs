using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Sidecar.Hosting;

namespace Sidecar.Telemetry;

internal static class TelemetryServiceCollectionExtensions
{
    /// <summary>
    /// OpenTelemetry: the sidecar's meter and activity source, with ASP.NET Core, Kestrel, HttpClient
    /// and runtime instrumentation; a Prometheus scrape endpoint (mapped on the management port), and
    /// OTLP for every signal when the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.
    /// </summary>
    public static IServiceCollection AddSidecarTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddMetrics();
        services.AddSingleton<SidecarMetrics>();
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName: "c010-sidecar"))
            .WithMetrics(metrics => metrics
                .AddMeter(SidecarMetrics.MeterName)
                .AddAspNetCoreInstrumentation()
                .AddMeter("Microsoft.AspNetCore.Server.Kestrel")
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter());
        if (!string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            // Traces only where they go somewhere: recording spans nobody exports costs CPU per request.
            otel.WithTracing(tracing => tracing
                    .AddSource(SidecarActivity.SourceName)
                    .AddAspNetCoreInstrumentation(o => o.Filter = context => !context.Request.Path.StartsWithSegments("/metrics") && !context.Request.Path.StartsWithSegments("/healthz") && !context.Request.Path.StartsWithSegments("/readyz"))
                    .AddHttpClientInstrumentation())
                .UseOtlpExporter();
        }

        return services;
    }

    /// <summary>The Prometheus scrape endpoint, on the management port.</summary>
    public static IEndpointRouteBuilder MapSidecarMetrics(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPrometheusScrapingEndpoint("/metrics").RequireManagementPort();
        return endpoints;
    }
}
