using System.Net;
using Microsoft.Extensions.Options;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Configuration;

public class HostingTests
{
    [Fact]
    public async Task ManagementPort_ServesHealth_AndNothingOfTheProxy()
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address);
        using var http = new HttpClient();

        using var healthz = await http.GetAsync(new Uri(sidecar.ManagementAddress, "/healthz")).DefaultTimeout();
        using var readyz = await http.GetAsync(new Uri(sidecar.ManagementAddress, "/readyz")).DefaultTimeout();
        using var proxiedOnManagement = await http.GetAsync(new Uri(sidecar.ManagementAddress, "/api/trpc/x")).DefaultTimeout();
        using var proxiedOnPublic = await http.GetAsync(new Uri(sidecar.PublicAddress, "/api/trpc/x")).DefaultTimeout();
        using var healthOnPublic = await http.GetAsync(new Uri(sidecar.PublicAddress, "/__emulator/echo/healthz")).DefaultTimeout();

        Assert.Equal(HttpStatusCode.OK, healthz.StatusCode);
        Assert.Equal(HttpStatusCode.OK, readyz.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, proxiedOnManagement.StatusCode);
        Assert.Equal(HttpStatusCode.OK, proxiedOnPublic.StatusCode);
        Assert.Equal(HttpStatusCode.OK, healthOnPublic.StatusCode);
        Assert.NotEqual(sidecar.PublicAddress.Port, sidecar.ManagementAddress.Port);
    }

    [Fact]
    public async Task PublicPort_HealthPathsGoToTheUpstream()
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(emulator.Address);
        using var http = new HttpClient();

        using var response = await http.GetAsync(new Uri(sidecar.PublicAddress, "/healthz")).DefaultTimeout();

        // The emulator has no /healthz: its 404, not the sidecar's health answer.
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task ReverseProxySection_WhenItDefinesRoutes_IsUsedAsYarpUsersWriteIt()
    {
        await using var emulator = await EmulatorServer.StartAsync();
        await using var sidecar = await SidecarServer.StartAsync(new Uri("http://127.0.0.1:1"), new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:chat:ClusterId"] = "c010",
            ["ReverseProxy:Routes:chat:Match:Path"] = "/api/{**rest}",
            ["ReverseProxy:Clusters:c010:Destinations:main:Address"] = emulator.Address.ToString(),
        });
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var chat = await client.SendAsync(Chat.Post(session, "hello")).DefaultTimeout();
        using var trpc = await client.GetAsync("/api/trpc/x").DefaultTimeout();
        using var unrouted = await client.GetAsync("/").DefaultTimeout();

        Assert.EndsWith("data: [DONE]\n\n", await chat.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(Sidecar.Streams.StreamOutcome.Completed, (await ended.DefaultTimeout()).Outcome);
        Assert.Equal(HttpStatusCode.OK, trpc.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unrouted.StatusCode);
    }

    [Theory]
    [InlineData("Sidecar:UpstreamUrl", "not a url", "Sidecar:UpstreamUrl")]
    [InlineData("Sidecar:UpstreamUrl", "ftp://example.com", "Sidecar:UpstreamUrl")]
    [InlineData("Sidecar:Listen:Address", "example.com", "Sidecar:Listen:Address")]
    [InlineData("Sidecar:Listen:PublicPort", "70000", "Sidecar:Listen:PublicPort")]
    [InlineData("Sidecar:Listen:RequestHeadersTimeout", "00:00:00", "Sidecar:Listen:RequestHeadersTimeout")]
    [InlineData("Sidecar:Listen:KeepAliveTimeout", "02:00:00", "Sidecar:Listen:KeepAliveTimeout")]
    [InlineData("Sidecar:Listen:MaxConnections", "-1", "Sidecar:Listen:MaxConnections")]
    [InlineData("Sidecar:Streams:UpstreamIdleTimeout", "00:00:00", "UpstreamIdleTimeout")]
    [InlineData("Sidecar:MaxChatRequestBodyBytes", "10", "MaxChatRequestBodyBytes")]
    [InlineData("Sidecar:Resume:JwksUrl", "/.well-known/jwks.json", "Sidecar:Resume:JwksUrl")]
    [InlineData("Sidecar:Resume:JwksUrl", "ftp://clerk.example/jwks.json", "Sidecar:Resume:JwksUrl")]
    [InlineData("Sidecar:Resume:JwtAuthorizedParties", "https://chat.example, chat.example", "Sidecar:Resume:JwtAuthorizedParties")]
    [InlineData("Sidecar:Resume:JwtAuthorizedParties", "https://chat.example/app", "Sidecar:Resume:JwtAuthorizedParties")]
    public async Task Start_InvalidSetting_FailsNamingTheKey(string key, string value, string named)
    {
        var failure = await Record.ExceptionAsync(async () =>
        {
            await using var app = SidecarServer.Build(new Uri("http://127.0.0.1:3000"), new Dictionary<string, string?> { [key] = value });
            await app.StartAsync().DefaultTimeout();
        });

        Assert.IsType<OptionsValidationException>(failure);
        Assert.Contains(named, failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    // With the sweep on, it would release reservations whose answers may still stream, or wait for their save.
    [InlineData("Sidecar:Quota:StuckAfter", "Sidecar:Quota:StuckAfter=00:20:00")]
    [InlineData("Sidecar:Quota:StuckAfter", "Sidecar:Quota:StuckAfter=01:00:00", "Sidecar:Streams:MaxDuration=01:00:00")]
    // A save repair's call (the probe's attempt timeout) must fit a claim's lease.
    [InlineData("Sidecar:Quota:ClaimLease", "Sidecar:Persistence:RepairSaveUrl=http://127.0.0.1:3000/save/{messageId}", "Sidecar:Persistence:ProbeAttemptTimeout=00:00:10")]
    public async Task Start_SettingsThatContradictEachOther_FailNamingTheKey(string named, params string[] settings)
    {
        var failure = await Record.ExceptionAsync(() => StartAsync(["Sidecar:Quota:BaseUrl=http://127.0.0.1:3000/api/internal/quota", .. settings]));

        Assert.IsType<OptionsValidationException>(failure);
        Assert.Contains(named, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_LongStreamsWithoutQuotaReconciliation_AreValid()
    {
        // The sweep's bound matters only with a quota API.
        Assert.Null(await Record.ExceptionAsync(() => StartAsync(["Sidecar:Streams:MaxDuration=02:00:00"])));
    }

    private static async Task StartAsync(string[] settings)
    {
        await using var app = SidecarServer.Build(new Uri("http://127.0.0.1:3000"), settings.Select(s => s.Split('=', 2)).ToDictionary(p => p[0], p => (string?)p[1]));
        await app.StartAsync().DefaultTimeout();
        await app.StopAsync().DefaultTimeout();
    }
}
