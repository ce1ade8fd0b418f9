using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Configuration;
using Sidecar.Streams;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>The session-token check's key set over time (a fake clock, a real JWKS server): kept, rotated, lost.</summary>
public sealed class ResumeTokenVerifierTests : IAsyncLifetime, IDisposable
{
    private readonly SigningKey _first = new("key-1");
    private readonly SigningKey _second = new("key-2");
    // On a whole second: a token's times are whole seconds.
    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
    private ServiceProvider _services = null!;
    private JwksServer _issuer = null!;
    private ResumeTokenVerifier _verifier = null!;

    public async Task InitializeAsync()
    {
        _issuer = await JwksServer.StartAsync(_first);
        _services = new ServiceCollection().AddHttpClient().BuildServiceProvider();
        var options = new ResumeOptions { JwksUrl = _issuer.Url.ToString(), JwtIssuer = JwksServer.Issuer };
        _verifier = new ResumeTokenVerifier(_services.GetRequiredService<IHttpClientFactory>(), new FixedOptions<ResumeOptions>(options), _time, NullLogger<ResumeTokenVerifier>.Instance);
    }

    public async Task DisposeAsync()
    {
        _verifier.Dispose();
        await _services.DisposeAsync();
        await _issuer.DisposeAsync();
    }

    public void Dispose()
    {
        _first.Dispose();
        _second.Dispose();
    }

    private Task<TokenCheck> CheckAsync(SigningKey key, string subject = "user_alice") =>
        _verifier.CheckAsync(key.Token(subject, _time.GetUtcNow()), CancellationToken.None).DefaultTimeout();

    /// <summary>
    /// Keys fetched, then past their lifetime: a check that refreshes them, its fetch held at the
    /// issuer until the returned source completes.
    /// </summary>
    private async Task<(Task<TokenCheck> Refreshing, TaskCompletionSource Slow)> StartHeldRefreshAsync()
    {
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        _time.Advance(ResumeTokenVerifier.KeysLifetime);
        var slow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _issuer.Hold = slow.Task;
        _issuer.ExpectRequest();
        var refreshing = CheckAsync(_first, "user_0");
        await _issuer.Requested.DefaultTimeout();
        return (refreshing, slow);
    }

    [Fact]
    public async Task Keys_AreFetchedOnce_AndAgainAfterAnHour()
    {
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(TokenCheck.Valid, await CheckAsync(_first, $"user_{i}"));
        }

        Assert.Equal(1, _issuer.Fetches);
        _time.Advance(ResumeTokenVerifier.KeysLifetime - TimeSpan.FromSeconds(1));
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        Assert.Equal(1, _issuer.Fetches);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        Assert.Equal(2, _issuer.Fetches);
    }

    [Fact]
    public async Task RotatedKey_IsFetchedWhenATokenNamesIt_AtMostEvery30Seconds()
    {
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        _issuer.Published = [_first, _second];

        // Right after the first fetch: not fetched again yet, so the new key's token is refused.
        Assert.Equal(TokenCheck.Refused, await CheckAsync(_second));
        Assert.Equal(1, _issuer.Fetches);

        _time.Advance(ResumeTokenVerifier.MinimumFetchInterval);
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_second));
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        Assert.Equal(2, _issuer.Fetches);

        // A key the issuer never published does not fetch on every token.
        using var unknown = new SigningKey("key-3");
        _time.Advance(ResumeTokenVerifier.MinimumFetchInterval);
        Assert.Equal(TokenCheck.Refused, await CheckAsync(unknown));
        Assert.Equal(TokenCheck.Refused, await CheckAsync(unknown));
        Assert.Equal(3, _issuer.Fetches);
    }

    [Fact]
    public async Task FailedFetch_WithNoKeys_IsUnavailable_AndTriedAgainAfterTwoSeconds()
    {
        _issuer.FailWith = 503;
        Assert.Equal(TokenCheck.KeysUnavailable, await CheckAsync(_first));
        Assert.Equal(TokenCheck.KeysUnavailable, await CheckAsync(_first));
        Assert.Equal(1, _issuer.Fetches);

        _issuer.FailWith = null;
        _time.Advance(ResumeTokenVerifier.RetryInterval);
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        Assert.Equal(2, _issuer.Fetches);
    }

    [Fact]
    public async Task FailedRefresh_KeepsTheKeysItHad()
    {
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        _issuer.FailWith = 500;
        _time.Advance(ResumeTokenVerifier.KeysLifetime);
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        Assert.Equal(2, _issuer.Fetches);

        // A key set that is not one (no signing key) counts as a failed fetch too.
        _issuer.FailWith = null;
        _issuer.Published = [];
        _time.Advance(ResumeTokenVerifier.KeysLifetime);
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
        Assert.Equal(3, _issuer.Fetches);
    }

    [Fact]
    public async Task SlowFirstFetch_IsSharedByEveryCallerThatWaitsForIt()
    {
        var slow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _issuer.Hold = slow.Task;
        var first = CheckAsync(_first, "user_0");
        await _issuer.Requested.DefaultTimeout();
        var others = Enumerable.Range(1, 20).Select(i => _verifier.CheckAsync(_first.Token($"user_{i}", _time.GetUtcNow()), CancellationToken.None)).ToArray();

        // No keys yet: they wait for the one fetch under way, not a fetch each.
        Assert.False(first.IsCompleted || others.Any(o => o.IsCompleted));
        slow.SetResult();
        Assert.Equal(TokenCheck.Valid, await first);
        Assert.All(await Task.WhenAll(others).DefaultTimeout(), check => Assert.Equal(TokenCheck.Valid, check));
        Assert.Equal(1, _issuer.Fetches);
    }

    [Fact]
    public async Task SlowRefresh_DoesNotHoldUpCallers_WhoUseTheKeysKept()
    {
        var (refreshing, slow) = await StartHeldRefreshAsync();

        // While the refresh hangs, the stale keys answer at once.
        for (var i = 1; i <= 5; i++)
        {
            Assert.Equal(TokenCheck.Valid, await CheckAsync(_first, $"user_{i}"));
        }

        Assert.False(refreshing.IsCompleted);
        slow.SetResult();
        Assert.Equal(TokenCheck.Valid, await refreshing);
        Assert.Equal(2, _issuer.Fetches);
    }

    [Fact]
    public async Task TokenWithANewKey_DuringAFetchUnderWay_WaitsForItsKeys()
    {
        var (refreshing, slow) = await StartHeldRefreshAsync();

        // The issuer rotated; the refresh under way will bring the new key.
        _issuer.Published = [_first, _second];
        var rotated = CheckAsync(_second, "user_1");
        Assert.False(rotated.IsCompleted);
        slow.SetResult();
        Assert.Equal(TokenCheck.Valid, await refreshing);
        Assert.Equal(TokenCheck.Valid, await rotated);
        Assert.Equal(2, _issuer.Fetches);
    }

    [Fact]
    public async Task TokenLifetime_IsJudgedOnTheSidecarsClock_WithAMinuteOfSkew()
    {
        var token = _first.Token("user_alice", _time.GetUtcNow());
        _time.Advance(TimeSpan.FromMinutes(1) + ResumeOptionsSkew);
        Assert.Equal(TokenCheck.Valid, await _verifier.CheckAsync(token, CancellationToken.None).DefaultTimeout());
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TokenCheck.Refused, await _verifier.CheckAsync(token, CancellationToken.None).DefaultTimeout());

        // Not yet valid, by more than the skew.
        var early = _first.Token("user_alice", _time.GetUtcNow() + TimeSpan.FromMinutes(2));
        Assert.Equal(TokenCheck.Refused, await _verifier.CheckAsync(early, CancellationToken.None).DefaultTimeout());
    }

    [Fact]
    public async Task TokenOfAnotherIssuer_SignedWithTheIssuersKey_IsRefused()
    {
        var foreign = _first.Token("user_alice", _time.GetUtcNow(), issuer: "https://other.example");
        Assert.Equal(TokenCheck.Refused, await _verifier.CheckAsync(foreign, CancellationToken.None).DefaultTimeout());
        Assert.Equal(TokenCheck.Valid, await CheckAsync(_first));
    }

    [Fact]
    public async Task WithAuthorizedParties_OnlyATokenIssuedToOneOfThoseOriginsCounts()
    {
        var options = new ResumeOptions
        {
            JwksUrl = _issuer.Url.ToString(),
            JwtIssuer = JwksServer.Issuer,
            JwtAuthorizedParties = "https://chat.example, HTTPS://WWW.Chat.Example:443/, http://localhost:3000",
        };
        using var verifier = new ResumeTokenVerifier(_services.GetRequiredService<IHttpClientFactory>(), new FixedOptions<ResumeOptions>(options), _time, NullLogger<ResumeTokenVerifier>.Instance);
        Task<TokenCheck> Check(ResumeTokenVerifier checker, string? party) =>
            checker.CheckAsync(_first.Token("user_alice", _time.GetUtcNow(), authorizedParty: party), CancellationToken.None).DefaultTimeout();

        Assert.Equal(TokenCheck.Valid, await Check(verifier, "https://chat.example"));
        Assert.Equal(TokenCheck.Valid, await Check(verifier, "https://www.chat.example"));
        Assert.Equal(TokenCheck.Valid, await Check(verifier, "http://localhost:3000"));
        // Another origin: host, scheme or port.
        Assert.Equal(TokenCheck.Refused, await Check(verifier, "https://other.example"));
        Assert.Equal(TokenCheck.Refused, await Check(verifier, "http://chat.example"));
        Assert.Equal(TokenCheck.Refused, await Check(verifier, "https://chat.example:8443"));
        Assert.Equal(TokenCheck.Refused, await Check(verifier, "http://localhost:3001"));
        // Not an origin, or none.
        Assert.Equal(TokenCheck.Refused, await Check(verifier, "https://chat.example/app"));
        Assert.Equal(TokenCheck.Refused, await Check(verifier, "chat.example"));
        Assert.Equal(TokenCheck.Refused, await Check(verifier, null));

        // Without the setting the origin is not looked at.
        Assert.Equal(TokenCheck.Valid, await Check(_verifier, "https://other.example"));
        Assert.Equal(TokenCheck.Valid, await Check(_verifier, null));
    }

    [Theory]
    [InlineData("https://chat.example.com", "https://chat.example.com")]
    [InlineData("HTTPS://Chat.Example.COM:443/", "https://chat.example.com")]
    [InlineData("http://localhost:3000", "http://localhost:3000")]
    [InlineData("https://chat.example.com/app", null)]
    [InlineData("https://chat.example.com/?next=1", null)]
    [InlineData("https://chat.example.com/#top", null)]
    [InlineData("https://user@chat.example.com", null)]
    [InlineData("chat.example.com", null)]
    [InlineData("ftp://chat.example.com", null)]
    public void Origin_IsSchemeHostAndPort_OrNothing(string value, string? origin) =>
        Assert.Equal(origin, HttpUrl.Origin(value));

    [Fact]
    public async Task ReloadToAnotherKeySet_FetchesItAtOnce()
    {
        using var otherKey = new SigningKey("other-1");
        await using var otherIssuer = await JwksServer.StartAsync(otherKey);
        var options = new MutableOptions(new ResumeOptions { JwksUrl = _issuer.Url.ToString() });
        using var verifier = new ResumeTokenVerifier(_services.GetRequiredService<IHttpClientFactory>(), options, _time, NullLogger<ResumeTokenVerifier>.Instance);
        Assert.Equal(TokenCheck.Valid, await verifier.CheckAsync(_first.Token("user_alice", _time.GetUtcNow()), CancellationToken.None).DefaultTimeout());

        // The configuration now names another issuer's keys: the next token is checked against them,
        // not refused or left unavailable while the old set's fetch throttle runs.
        options.CurrentValue = new ResumeOptions { JwksUrl = otherIssuer.Url.ToString() };
        Assert.Equal(TokenCheck.Valid, await verifier.CheckAsync(otherKey.Token("user_alice", _time.GetUtcNow()), CancellationToken.None).DefaultTimeout());
        Assert.Equal(TokenCheck.Refused, await verifier.CheckAsync(_first.Token("user_alice", _time.GetUtcNow()), CancellationToken.None).DefaultTimeout());
        Assert.Equal(1, otherIssuer.Fetches);
    }

    private static readonly TimeSpan ResumeOptionsSkew = new ResumeOptions().JwtClockSkew;

    private sealed class MutableOptions(ResumeOptions value) : IOptionsMonitor<ResumeOptions>
    {
        public ResumeOptions CurrentValue { get; set; } = value;

        public ResumeOptions Get(string? name) => CurrentValue;

        public IDisposable? OnChange(Action<ResumeOptions, string?> listener) => null;
    }
}
