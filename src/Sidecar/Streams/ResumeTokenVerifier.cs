using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Sidecar.Telemetry;

namespace Sidecar.Streams;

/// <summary>What the check of a resume's or stop's session token found.</summary>
internal enum TokenCheck
{
    /// <summary>Signed by one of the issuer's keys, within its lifetime (and from the configured issuer).</summary>
    Valid,

    /// <summary>Not: a forged, tampered, expired or foreign token.</summary>
    Refused,

    /// <summary>The issuer's keys could not be had (never fetched, or the fetch failed and none were kept).</summary>
    KeysUnavailable,
}

/// <summary>
/// Checks the JWT a resume or stop presents against the signing keys of its issuer
/// (<see cref="ResumeOptions.JwksUrl"/>), so that the owner binding rests on a token the issuer
/// signed, not on an issuer and subject anyone can write. The service itself checks every token
/// it is sent; resumes and stops are answered here, from the store, without it.
/// </summary>
/// <remarks>
/// The key set is fetched on first use and kept for an hour; while it is refreshed, callers use
/// the keys kept without waiting. A token signed with a key the set does not hold (the issuer
/// rotated its keys) fetches it again, at most every 30 seconds, or waits for a fetch under way.
/// A failed fetch keeps the keys it had; with none kept, it is tried again after 2 seconds. The
/// throttle is per URL: a reload that names another key set fetches it at once. Only asymmetric
/// algorithms are taken: a token signed with a shared secret or not at all is refused.
/// </remarks>
internal sealed class ResumeTokenVerifier(
    IHttpClientFactory httpClientFactory,
    IOptionsMonitor<ResumeOptions> options,
    TimeProvider time,
    ILogger<ResumeTokenVerifier> logger) : IDisposable
{
    public const string HttpClientName = "sidecar-jwks";

    /// <summary>The longest a key set is kept before it is fetched again.</summary>
    internal static readonly TimeSpan KeysLifetime = TimeSpan.FromHours(1);

    /// <summary>The shortest time between two fetches of the key set (unknown keys, failed fetches).</summary>
    internal static readonly TimeSpan MinimumFetchInterval = TimeSpan.FromSeconds(30);

    /// <summary>The shortest time between two fetches while no key set is kept.</summary>
    internal static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(2);

    private static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(5);

    private static readonly string[] Algorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    private readonly JsonWebTokenHandler _handler = new();
    private readonly SemaphoreSlim _fetching = new(1, 1);
    private KeySet? _keys;
    private FetchAttempt? _lastFetch; // null: never

    /// <summary>Whether tokens are checked at all (<see cref="ResumeOptions.JwksUrl"/> set).</summary>
    public bool Enabled => !string.IsNullOrEmpty(options.CurrentValue.JwksUrl);

    public async Task<TokenCheck> CheckAsync(string token, CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue;
        if (string.IsNullOrEmpty(settings.JwksUrl))
        {
            // Turned off by a configuration reload since the caller looked: nothing to check.
            return TokenCheck.Valid;
        }

        // Validated at start: an absolute http(s) URL.
        var url = new Uri(settings.JwksUrl);
        var keys = await KeysAsync(url, unknownKey: false, cancellationToken);
        if (keys is null)
        {
            return TokenCheck.KeysUnavailable;
        }

        var result = await ValidateAsync(token, keys, settings);
        if (result.Exception is SecurityTokenSignatureKeyNotFoundException
            && await KeysAsync(url, unknownKey: true, cancellationToken) is { } fetched && !ReferenceEquals(fetched, keys))
        {
            result = await ValidateAsync(token, fetched, settings);
        }

        if (!result.IsValid)
        {
            Log.ResumeTokenRefused(logger, result.Exception?.GetType().Name ?? "unknown");
            return TokenCheck.Refused;
        }

        if (settings.AuthorizedParties() is { Length: > 0 } parties)
        {
            var azp = result.SecurityToken is JsonWebToken jwt && jwt.TryGetPayloadValue<string>("azp", out var claimed) ? claimed : null;
            if (Configuration.HttpUrl.Origin(azp) is not { } origin || !parties.Contains(origin, StringComparer.Ordinal))
            {
                // An origin, not a credential: logged (cut short) so that a misconfigured list shows.
                Log.ResumeTokenOtherParty(logger, azp is null ? "(none)" : azp.Length > 100 ? azp[..100] : azp);
                return TokenCheck.Refused;
            }
        }

        return TokenCheck.Valid;
    }

    private Task<TokenValidationResult> ValidateAsync(string token, KeySet keys, ResumeOptions settings) =>
        _handler.ValidateTokenAsync(token, new TokenValidationParameters
        {
            IssuerSigningKeys = keys.Keys,
            ValidAlgorithms = Algorithms,
            ValidateIssuer = !string.IsNullOrEmpty(settings.JwtIssuer),
            ValidIssuer = settings.JwtIssuer,
            // Clerk's session tokens name no audience.
            ValidateAudience = false,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            // On this sidecar's clock (a fake one in tests).
            LifetimeValidator = (notBefore, expires, _, _) =>
            {
                var now = time.GetUtcNow().UtcDateTime;
                return expires is { } end && now <= end + settings.JwtClockSkew
                    && (notBefore is not { } start || now >= start - settings.JwtClockSkew);
            },
        });

    /// <summary>
    /// The key set of <paramref name="url"/>: the one kept while it is fresh; else fetched (one
    /// fetch at a time). <paramref name="unknownKey"/>: a token named a key the kept set lacks.
    /// </summary>
    private async Task<KeySet?> KeysAsync(Uri url, bool unknownKey, CancellationToken cancellationToken)
    {
        // The count first: a fetch stores its keys before it lets go, so a caller that sees no
        // fetch under way also sees the keys of the one that just ended.
        var fetchUnderWay = _fetching.CurrentCount == 0;
        var kept = Volatile.Read(ref _keys) is { } keys && keys.Url == url ? keys : null;
        if (kept is not null
            && ((!unknownKey && (time.GetElapsedTime(kept.FetchedAt) < KeysLifetime || fetchUnderWay))
                || (!fetchUnderWay && FetchedWithin(url, MinimumFetchInterval))))
        {
            // Fresh, or stale while a fetch is under way: the keys kept, without waiting behind
            // it. Or fetched moments ago (the issuer is down, or lacks the key). A token naming a
            // key the kept set lacks waits for a fetch under way instead: it may bring that key.
            return kept;
        }

        if (kept is not null && !unknownKey)
        {
            // Stale keys: refresh them unless another caller has just begun to; never wait for it.
            if (!await _fetching.WaitAsync(0, CancellationToken.None))
            {
                return kept;
            }
        }
        else
        {
            await _fetching.WaitAsync(cancellationToken);
        }

        try
        {
            kept = _keys?.Url == url ? _keys : null;
            if (!string.Equals(options.CurrentValue.JwksUrl, url.OriginalString, StringComparison.Ordinal))
            {
                // A reload named another key set while this call waited: not fetched for it.
                return kept;
            }

            if (kept is not null && !unknownKey && time.GetElapsedTime(kept.FetchedAt) < KeysLifetime)
            {
                // Fetched while this call waited.
                return kept;
            }

            // Not again so soon: with keys kept, every 30 s at most; without, every 2 s (a failed
            // first fetch costs resumes a short while of "unavailable", not a flood of fetches).
            if (FetchedWithin(url, kept is null ? RetryInterval : MinimumFetchInterval))
            {
                return kept;
            }

            Volatile.Write(ref _lastFetch, new FetchAttempt(url, time.GetTimestamp()));
            try
            {
                // Not the caller's token: a client that leaves must not cancel the fetch others wait for.
                using var timeout = new CancellationTokenSource(FetchTimeout, time);
                var json = await httpClientFactory.CreateClient(HttpClientName).GetStringAsync(url, timeout.Token);
                var signingKeys = new JsonWebKeySet(json).GetSigningKeys();
                if (signingKeys.Count == 0)
                {
                    throw new ArgumentException("the key set holds no signing key");
                }

                var fetched = new KeySet(url, signingKeys, time.GetTimestamp());
                Volatile.Write(ref _keys, fetched);
                return fetched;
            }
            catch (Exception ex) when (ex is HttpRequestException or ArgumentException or InvalidOperationException
                or System.Text.Json.JsonException or OperationCanceledException)
            {
                Log.JwksFetchFailed(logger, url.GetLeftPart(UriPartial.Path), ex.GetType().Name, kept is not null);
                return kept;
            }
        }
        finally
        {
            _fetching.Release();
        }
    }

    // Per URL: after a reload names another key set, the old one's fetches do not hold up its first.
    private bool FetchedWithin(Uri url, TimeSpan interval) =>
        Volatile.Read(ref _lastFetch) is { } last && last.Url == url && time.GetElapsedTime(last.At) < interval;

    public void Dispose() => _fetching.Dispose();

    private sealed record KeySet(Uri Url, IList<SecurityKey> Keys, long FetchedAt);

    private sealed record FetchAttempt(Uri Url, long At);
}
