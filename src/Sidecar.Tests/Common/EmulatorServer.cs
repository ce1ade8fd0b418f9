using ChatUpstream;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Sidecar.Tests.Common;

/// <summary>The c010 emulator on a real Kestrel server, 127.0.0.1, port 0, recording what it sends.</summary>
public sealed class EmulatorServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private EmulatorServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
        Journal = app.Services.GetRequiredService<EmulatorJournal>();
        Journal.RecordBodies = true;
    }

    public Uri Address { get; }

    public EmulatorJournal Journal { get; }

    /// <summary>The emulated quota store (reservations and the calls they received).</summary>
    public QuotaLedger Quota => _app.Services.GetRequiredService<QuotaLedger>();

    /// <summary>The emulator's settings, read per request: tests may change them after start (e.g. the ack callback URL).</summary>
    public EmulatorOptions Options => _app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<EmulatorOptions>>().Value;

    public static async Task<EmulatorServer> StartAsync(Action<EmulatorOptions>? configure = null)
    {
        var app = EmulatorApp.Create(["--urls", "http://127.0.0.1:0", "--Logging:LogLevel:Default", "Warning"], o =>
        {
            o.DefaultPaceMs = 0;
            configure?.Invoke(o);
        });
        await app.StartAsync().DefaultTimeout();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new EmulatorServer(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
