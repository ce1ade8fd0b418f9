using System.Net;
using ChatUpstream;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>
/// Resume and stop with <c>Sidecar:Resume:JwksUrl</c> set: the owner binding of a signed-in user
/// rests on a token its issuer signed (a real JWKS server, a real sidecar, the emulator upstream).
/// </summary>
public sealed class ResumeTokenTests : IAsyncLifetime, IDisposable
{
    private readonly SigningKey _key = new("key-1");
    private readonly SigningKey _stranger = new("key-1");
    private EmulatorServer _emulator = null!;
    private JwksServer _issuer = null!;
    private SidecarServer _sidecar = null!;

    public async Task InitializeAsync()
    {
        _emulator = await EmulatorServer.StartAsync();
        _issuer = await JwksServer.StartAsync(_key);
        _sidecar = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Resume:JwksUrl"] = _issuer.Url.ToString(),
            ["Sidecar:Resume:JwtIssuer"] = JwksServer.Issuer,
        });
    }

    public async Task DisposeAsync()
    {
        await _sidecar.DisposeAsync();
        await _issuer.DisposeAsync();
        await _emulator.DisposeAsync();
    }

    public void Dispose()
    {
        _key.Dispose();
        _stranger.Dispose();
    }

    [Fact]
    public async Task Resume_WithTheOwnersNextSignedToken_Replays_AndForgedTokensForTheSameUser_AreRefused()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var now = DateTimeOffset.UtcNow;
        var (answer, record) = await StartAsync(client, session, _key.Token("user_alice", now));

        // Forged: unsigned, signed by a key of the same id that the issuer never published, or
        // the owner's real token with its subject rewritten (the signature no longer matches).
        var payload = AlicesClaims(now);
        var real = _key.Token("user_mallory", now).Split('.');
        string[] forged =
        [
            SigningKey.Forge("""{"alg":"none","typ":"JWT"}""", payload),
            SigningKey.Forge("""{"alg":"RS256","kid":"key-1","typ":"JWT"}""", payload, real[2]),
            SigningKey.Forge("""{"alg":"HS256","typ":"JWT"}""", payload, SigningKey.Base64Url(new byte[32])),
            _stranger.Token("user_alice", now),
            real[0] + "." + SigningKey.Base64Url(System.Text.Encoding.UTF8.GetBytes(payload)) + "." + real[2],
        ];
        foreach (var token in forged)
        {
            using var resume = await client.SendAsync(Chat.Resume(session, bearer: token)).DefaultTimeout();
            Assert.Equal(HttpStatusCode.NoContent, resume.StatusCode);
            using var stop = await client.SendAsync(Chat.Stop(session, bearer: token)).DefaultTimeout();
            Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        }

        // Clerk re-issues the token every minute: the next one resumes.
        using var resumed = await client.SendAsync(Chat.Resume(session, bearer: _key.Token("user_alice", now.AddSeconds(50))), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var replay = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        record.ReleaseGate();

        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        var expected = Chat.WithIds(Chat.Events(record.SentBytes()));
        Assert.Equal(expected, await answer.ReadToEndAsync());
        Assert.Equal(expected, await replay.ReadToEndAsync());
        Assert.Equal(1, _issuer.Fetches);
    }

    [Fact]
    public async Task Resume_WithAnExpiredToken_OrAnotherIssuersToken_IsRefused()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var now = DateTimeOffset.UtcNow;
        var (answer, record) = await StartAsync(client, session, _key.Token("user_alice", now));

        // Past its expiry by more than the minute of skew allowed.
        using var expired = await client.SendAsync(Chat.Resume(session, bearer: _key.Token("user_alice", now.AddMinutes(-5)))).DefaultTimeout();
        // Signed with the right key, but naming another issuer (so its owner hash differs too).
        using var foreign = await client.SendAsync(Chat.Resume(session, bearer: _key.Token("user_alice", now, issuer: "https://other.example"))).DefaultTimeout();
        // Expired by less than the skew: still the owner's.
        using var late = await client.SendAsync(Chat.Resume(session, bearer: _key.Token("user_alice", now.AddSeconds(-90))), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        record.ReleaseGate();

        Assert.Equal(HttpStatusCode.NoContent, expired.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, foreign.StatusCode);
        Assert.Equal(HttpStatusCode.OK, late.StatusCode);
        Assert.EndsWith("data: [DONE]\n\n", Chat.Text(await answer.ReadToEndAsync()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stop_WithTheOwnersSignedToken_Stops_AndOpaqueTokensStillCountWhole()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var (answer, record) = await StartAsync(client, session, _key.Token("user_alice", DateTimeOffset.UtcNow));
        using var stop = await client.SendAsync(Chat.Stop(session, bearer: _key.Token("user_alice", DateTimeOffset.UtcNow))).DefaultTimeout();
        Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        Assert.Equal(AnswerStatus.ReaderGone, await record.Ended.DefaultTimeout());
        Assert.EndsWith("data: {\"type\":\"abort\"}\n\nid: 3\ndata: [DONE]\n\n", Chat.Text(await answer.ReadToEndAsync()), StringComparison.Ordinal);

        // A credential that is not a JWT is not checked against the keys: it binds as a whole.
        var other = Chat.NewSession();
        var (opaque, opaqueRecord) = await StartAsync(client, other, "token-of-bob");
        using var byBob = await client.SendAsync(Chat.Resume(other, bearer: "token-of-bob"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        using var byMallory = await client.SendAsync(Chat.Resume(other, bearer: "token-of-mallory")).DefaultTimeout();
        opaqueRecord.ReleaseGate();
        Assert.Equal(HttpStatusCode.OK, byBob.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, byMallory.StatusCode);
        Assert.EndsWith("data: [DONE]\n\n", Chat.Text(await opaque.ReadToEndAsync()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resume_WithTheTokenInClerksSessionCookie_IsCheckedAsABearerIs()
    {
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var now = DateTimeOffset.UtcNow;
        var (answer, record) = await StartAsync(client, session, _key.Token("user_alice", now));
        var payload = AlicesClaims(now);

        HttpRequestMessage WithCookie(string token)
        {
            var resume = Chat.Resume(session);
            resume.Headers.Add("Cookie", $"theme=dark; __session={token}");
            return resume;
        }

        using var unsigned = await client.SendAsync(WithCookie(SigningKey.Forge("""{"alg":"none","typ":"JWT"}""", payload))).DefaultTimeout();
        using var strangers = await client.SendAsync(WithCookie(_stranger.Token("user_alice", now))).DefaultTimeout();
        using var owners = await client.SendAsync(WithCookie(_key.Token("user_alice", now.AddSeconds(50))), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        record.ReleaseGate();

        Assert.Equal(HttpStatusCode.NoContent, unsigned.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, strangers.StatusCode);
        Assert.Equal(HttpStatusCode.OK, owners.StatusCode);
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        var expected = Chat.WithIds(Chat.Events(record.SentBytes()));
        Assert.Equal(expected, await new TestEventReader(await owners.Content.ReadAsStreamAsync()).ReadToEndAsync());
        Assert.Equal(expected, await answer.ReadToEndAsync());
    }

    [Fact]
    public async Task Resume_WhenTheKeysCannotBeFetched_AnswersATypedUnavailable_AndChatStillStreams()
    {
        _issuer.FailWith = 500;
        using var client = _sidecar.CreateClient();
        var session = Chat.NewSession();
        var token = _key.Token("user_alice", DateTimeOffset.UtcNow);
        var (answer, record) = await StartAsync(client, session, token);

        using var resume = await client.SendAsync(Chat.Resume(session, bearer: token)).DefaultTimeout();
        record.ReleaseGate();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, resume.StatusCode);
        Assert.Equal("RESUME_UNAVAILABLE", (await ErrorJson.ReadAsync(resume)).GetProperty("errorCode").GetString());
        Assert.EndsWith("data: [DONE]\n\n", Chat.Text(await answer.ReadToEndAsync()), StringComparison.Ordinal);
        Assert.Equal(AnswerStatus.Completed, await record.Ended.DefaultTimeout());
        Assert.Contains("signing keys could not be fetched", _sidecar.Logs.Text, StringComparison.Ordinal);
    }

    /// <summary>An unsigned payload claiming to be user_alice of the issuer, valid for a minute from <paramref name="now"/>: what a forger writes.</summary>
    private static string AlicesClaims(DateTimeOffset now) =>
        $$"""{"iss":"{{JwksServer.Issuer}}","sub":"user_alice","exp":{{now.AddMinutes(1).ToUnixTimeSeconds()}}}""";

    /// <summary>Starts an answer held after two events, as the given bearer, and waits until the store has them.</summary>
    private async Task<(TestEventReader Answer, AnswerRecord Record)> StartAsync(HttpClient client, string session, string bearer)
    {
        var post = Chat.Post(session, "/scenario gate:2");
        post.Headers.Authorization = new("Bearer", bearer);
        var response = await client.SendAsync(post, HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();
        await record.GateReached.DefaultTimeout();
        await StoreProbe.WaitForEventsAsync(_sidecar.Services.GetRequiredService<IStreamStore>(), session, 2);
        return (new TestEventReader(await response.Content.ReadAsStreamAsync()), record);
    }
}
