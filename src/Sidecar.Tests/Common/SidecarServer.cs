using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Sidecar.Configuration;
using Sidecar.Hosting;
using Sidecar.Streams;

namespace Sidecar.Tests.Common;

/// <summary>
/// The sidecar exactly as <c>Program.cs</c> builds it, on real Kestrel listeners (127.0.0.1, port 0),
/// with configuration overrides and, optionally, a fake clock.
/// </summary>
public sealed class SidecarServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private SidecarServer(WebApplication app)
    {
        _app = app;
        var listeners = app.Services.GetRequiredService<SidecarListeners>();
        PublicAddress = ToUri(listeners.PublicEndPoint!);
        ManagementAddress = ToUri(listeners.ManagementEndPoint!);
    }

    public Uri PublicAddress { get; }

    public Uri ManagementAddress { get; }

    public IServiceProvider Services => _app.Services;

    internal StreamPumps Pumps => _app.Services.GetRequiredService<StreamPumps>();

    /// <summary>Warnings and errors the sidecar logged (for failure messages).</summary>
    public CapturedLogs Logs { get; private set; } = new();

    public static async Task<SidecarServer> StartAsync(Uri upstream, IDictionary<string, string?>? settings = null, TimeProvider? time = null, CapturedLogs? logs = null, Action<IServiceCollection>? services = null)
    {
        logs ??= new CapturedLogs();
        var app = Build(upstream, settings, time, logs, services);
        await app.StartAsync().DefaultTimeout();
        return new SidecarServer(app) { Logs = logs };
    }

    /// <summary>Builds without starting (for start-up validation tests); <paramref name="services"/> adds to the sidecar's services.</summary>
    public static WebApplication Build(Uri upstream, IDictionary<string, string?>? settings = null, TimeProvider? time = null, CapturedLogs? logs = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        var config = new Dictionary<string, string?>
        {
            ["Sidecar:UpstreamUrl"] = upstream.ToString(),
            ["Sidecar:Listen:Address"] = "127.0.0.1",
            ["Sidecar:Listen:PublicPort"] = "0",
            ["Sidecar:Listen:ManagementPort"] = "0",
            // Tests stop their sidecars at once unless they test the delay.
            ["Sidecar:Streams:ShutdownDelay"] = "00:00:00",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(config);
        builder.Logging.ClearProviders();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
        }

        if (Environment.GetEnvironmentVariable("SIDECAR_TEST_LOGS") == "1")
        {
            builder.Logging.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ").SetMinimumLevel(LogLevel.Debug);
        }

        builder.Services.AddSidecar(builder.Configuration);
        if (time is not null)
        {
            builder.Services.RemoveAll<TimeProvider>();
            builder.Services.AddSingleton(time);
        }

        services?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapSidecar();
        return app;
    }

    /// <summary>Shuts the sidecar down as the host does on SIGTERM.</summary>
    public Task StopAsync() => _app.StopAsync();

    public HttpClient CreateClient() => new(new SocketsHttpHandler { UseCookies = false, AutomaticDecompression = DecompressionMethods.None })
    {
        BaseAddress = PublicAddress,
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static Uri ToUri(IPEndPoint endPoint) => new($"http://{endPoint}");
}
