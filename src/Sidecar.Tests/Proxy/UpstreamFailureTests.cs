using System.Net;
using System.Net.Sockets;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Proxy;

public class UpstreamFailureTests
{
    [Theory]
    [InlineData("POST")]
    [InlineData("GET")]
    public async Task Request_UpstreamRefusesConnections_GetsTypedServiceUnavailable(string method)
    {
        using var refusing = Loopback.RefusingPort(out var port);
        await using var sidecar = await SidecarServer.StartAsync(new Uri($"http://127.0.0.1:{port}"));
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        using var request = method == "POST" ? Chat.Post(session, "hi") : new HttpRequestMessage(HttpMethod.Get, "/api/trpc/x");

        using var response = await client.SendAsync(request).DefaultTimeout();
        var error = await ErrorJson.ReadAsync(response);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        ErrorJson.AssertContractShape(error, "SERVICE_UNAVAILABLE", 503);
        Assert.Equal("UPSTREAM_UNAVAILABLE", error.GetProperty("errorCode").GetString());
        if (method == "POST")
        {
            Assert.Equal(session, error.GetProperty("metadata").GetProperty("sessionId").GetString());
        }
    }

    [Fact]
    public async Task Post_UpstreamNeverAnswers_GetsTypedTimeout()
    {
        // An upstream that accepts the connection and never answers.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var accepted = silent.AcceptTcpClientAsync();
        await using var sidecar = await SidecarServer.StartAsync(
            new Uri($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}"),
            new Dictionary<string, string?> { ["Sidecar:UpstreamTimeout"] = "00:00:00.300" });
        using var client = sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Post(Chat.NewSession(), "hi")).DefaultTimeout();
        var error = await ErrorJson.ReadAsync(response);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        ErrorJson.AssertContractShape(error, "TIMEOUT", 504);
        (await accepted).Dispose();
    }
}
