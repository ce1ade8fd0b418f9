using System.Net;
using System.Text.Json;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Proxy;

/// <summary>The upstream's error bodies, through the sidecar: the status kept, the shape completed.</summary>
public class ErrorBodyTests(ProxyFixture fixture) : IClassFixture<ProxyFixture>
{
    [Theory]
    // A: guard errors, full shape: unchanged.
    [InlineData("rate-limit", 429, "RATE_LIMIT", "guard")]
    [InlineData("auth", 401, "AUTHENTICATION", "guard")]
    // B: memory errors: source, category, severity and errorCode added.
    [InlineData("session", 400, "INVALID_REQUEST", "server")]
    [InlineData("memory", 500, "SERVER_ERROR", "server")]
    // C: billing guard: classified.
    [InlineData("quota", 402, "USAGE_LIMIT_EXCEEDED", "billing")]
    [InlineData("model-not-allowed", 403, "MODEL_ACCESS_DENIED", "billing")]
    [InlineData("feature-not-allowed", 403, "MODEL_ACCESS_DENIED", "billing")]
    [InlineData("internal", 500, "SERVER_ERROR", "billing")]
    // Not the route's own: typed, status kept.
    [InlineData("html", 500, "SERVER_ERROR", "upstream")]
    [InlineData("empty", 502, "SERVICE_UNAVAILABLE", "upstream")]
    public async Task Post_UpstreamErrorBody_ReachesTheClientInTheContractsShape(string kind, int status, string type, string source)
    {
        using var client = fixture.Sidecar.CreateClient();
        var session = Chat.NewSession();

        using var response = await client.SendAsync(Chat.Post(session, "/scenario error:" + kind)).DefaultTimeout();

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = document.RootElement;
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(status, error.GetProperty("statusCode").GetInt32());
        Assert.Equal(source, error.GetProperty("source").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("error").GetString()));
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrEmpty(error.GetProperty("metadata").GetProperty("timestamp").GetString()));
        Assert.Equal(response.Headers.GetValues("x-request-id").Single(), error.GetProperty("metadata").GetProperty("requestId").GetString());
        Assert.Equal(session, response.Headers.GetValues("x-session-id").Single());
    }

    [Fact]
    public async Task Post_GuardError_IsPassedByteForByte()
    {
        using var client = fixture.Sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario error:bot")).DefaultTimeout();
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        using var document = JsonDocument.Parse(body);
        Assert.Equal(["type", "error", "message", "statusCode", "errorCode", "source", "metadata"], document.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["timestamp", "requestId", "sessionId"], document.RootElement.GetProperty("metadata").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task Post_ErrorBodyOverTheLimit_IsPassedThroughUnparsed()
    {
        using var client = fixture.Sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario error:huge")).DefaultTimeout();
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.False(document.RootElement.TryGetProperty("type", out _));
        Assert.Equal(100_000, document.RootElement.GetProperty("message").GetString()!.Length);
    }

    [Fact]
    public async Task Post_CompressedErrorBody_IsPassedThroughUnparsed()
    {
        using var client = fixture.Sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Post(Chat.NewSession(), "/scenario error:gzip")).DefaultTimeout();
        await using var gzip = new System.IO.Compression.GZipStream(await response.Content.ReadAsStreamAsync(), System.IO.Compression.CompressionMode.Decompress);
        using var document = await JsonDocument.ParseAsync(gzip);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("gzip", response.Content.Headers.ContentEncoding.Single());
        Assert.Equal("INTERNAL_ERROR", document.RootElement.GetProperty("code").GetString());
        Assert.False(document.RootElement.TryGetProperty("type", out _));
    }

    [Fact]
    public async Task Get_UnknownAgent_TheUpstreamsGuardErrorStaysWhole()
    {
        using var client = fixture.Sidecar.CreateClient();

        using var response = await client.SendAsync(Chat.Resume(Chat.NewSession(), agentId: "nope")).DefaultTimeout();
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("INVALID_REQUEST", document.RootElement.GetProperty("type").GetString());
        Assert.Equal("guard", document.RootElement.GetProperty("source").GetString());
    }
}
