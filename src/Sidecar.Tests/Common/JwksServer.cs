using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Sidecar.Tests.Common;

/// <summary>
/// A token issuer as Clerk is one: RSA signing keys, their public halves served as a JWKS on a
/// real Kestrel server (127.0.0.1, port 0), and session tokens signed with them.
/// </summary>
public sealed class JwksServer : IAsyncDisposable
{
    public const string Issuer = "https://clerk.c010.test";

    private readonly WebApplication _app;
    private int _fetches;

    private JwksServer(WebApplication app, Uri address)
    {
        _app = app;
        Url = new Uri(address, "/.well-known/jwks.json");
    }

    public Uri Url { get; }

    /// <summary>How many times the key set was asked for.</summary>
    public int Fetches => Volatile.Read(ref _fetches);

    /// <summary>The keys served (their public halves); tests change them to rotate.</summary>
    public IReadOnlyList<SigningKey> Published { get; set; } = [];

    /// <summary>Set: the key set answers this status instead.</summary>
    public int? FailWith { get; set; }

    /// <summary>Set: each request for the key set waits for it before answering (a slow issuer).</summary>
    public Task? Hold { get; set; }

    /// <summary>Completes when a request for the key set has arrived (after <see cref="ExpectRequest"/>).</summary>
    public Task Requested => _requested.Task;

    private TaskCompletionSource _requested = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly TaskCompletionSource _stopping = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Re-arms <see cref="Requested"/> for the next request.</summary>
    public void ExpectRequest() => _requested = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<JwksServer> StartAsync(params SigningKey[] published)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        JwksServer? server = null;
        app.MapGet("/.well-known/jwks.json", async (HttpContext context) =>
        {
            Interlocked.Increment(ref server!._fetches);
            server._requested.TrySetResult();
            if (server.Hold is { } hold)
            {
                // Let go when the server stops, so that a test failing while it holds cannot stall it.
                await Task.WhenAny(hold, server._stopping.Task);
            }

            if (server.FailWith is { } status)
            {
                context.Response.StatusCode = status;
                return;
            }

            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"keys\":[" + string.Join(",", server.Published.Select(k => k.PublicJwk())) + "]}");
        });
        await app.StartAsync().DefaultTimeout();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        server = new JwksServer(app, new Uri(address)) { Published = published };
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.TrySetResult();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>An RSA signing key of the issuer, by its key id.</summary>
public sealed class SigningKey(string keyId) : IDisposable
{
    private readonly RSA _rsa = RSA.Create(2048);

    public string KeyId { get; } = keyId;

    /// <summary>
    /// A session token as Clerk issues one: RS256, issuer, subject, a minute's lifetime from
    /// <paramref name="issuedAt"/>, and the origin it was issued to (<c>azp</c>) when given.
    /// </summary>
    public string Token(string subject, DateTimeOffset issuedAt, string issuer = JwksServer.Issuer, TimeSpan? lifetime = null, string? authorizedParty = null) =>
        new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Claims = authorizedParty is null
                ? new Dictionary<string, object> { ["sub"] = subject, ["sid"] = "sess_" + subject }
                : new Dictionary<string, object> { ["sub"] = subject, ["sid"] = "sess_" + subject, ["azp"] = authorizedParty },
            IssuedAt = issuedAt.UtcDateTime,
            NotBefore = issuedAt.UtcDateTime,
            Expires = (issuedAt + (lifetime ?? TimeSpan.FromMinutes(1))).UtcDateTime,
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(_rsa) { KeyId = KeyId }, SecurityAlgorithms.RsaSha256),
        });

    /// <summary>The key's public half as a JWK.</summary>
    public string PublicJwk()
    {
        var parameters = _rsa.ExportParameters(includePrivateParameters: false);
        return $$"""{"kty":"RSA","use":"sig","alg":"RS256","kid":"{{KeyId}}","n":"{{Base64Url(parameters.Modulus!)}}","e":"{{Base64Url(parameters.Exponent!)}}"}""";
    }

    /// <summary>A token with this header and payload and no valid signature (<c>alg:none</c>, or a made-up one).</summary>
    public static string Forge(string header, string payload, string signature = "") =>
        Base64Url(Encoding.UTF8.GetBytes(header)) + "." + Base64Url(Encoding.UTF8.GetBytes(payload)) + "." + signature;

    public static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public void Dispose() => _rsa.Dispose();
}
