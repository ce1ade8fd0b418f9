using System.ComponentModel.DataAnnotations;

namespace Sidecar.Streams;

/// <summary>How resume behaves (section <c>Sidecar:Resume</c>).</summary>
public sealed class ResumeOptions : IValidatableObject
{
    public const string SectionName = "Sidecar:Resume";

    /// <summary>
    /// Each forwarded event carries an SSE <c>id:</c> (its position in the stream), so that a
    /// client sending <c>Last-Event-ID</c> resumes after it with no duplicate and no gap.
    /// </summary>
    public bool EventIds { get; set; } = true;

    /// <summary>
    /// The status for a resume by someone other than the stream's owner: 204 (as "no stream", so
    /// existence does not leak), 403 or 404.
    /// </summary>
    [AllowedValues(204, 403, 404)]
    public int DeniedStatus { get; set; } = 204;

    /// <summary>
    /// A secret, the same on every replica, that keys the owner hashes stored with each stream
    /// (HMAC-SHA256). Without it the hash is a plain SHA-256 that anyone who can read Redis could
    /// test guesses against. Set it from a Kubernetes secret (<c>Sidecar__Resume__OwnerHashKey</c>).
    /// </summary>
    public string? OwnerHashKey { get; set; }

    /// <summary>
    /// The signing keys (JWKS) of the issuer of the service's session tokens, e.g. Clerk's
    /// <c>https://&lt;frontend API&gt;/.well-known/jwks.json</c>. When set, a resume or stop whose
    /// credential is a JWT is served only when the token's signature verifies against these keys and
    /// it is within its lifetime; otherwise it is refused as a stranger's. Without it the owner binding
    /// trusts the token's issuer and subject as written, so knowing a user's subject and a session
    /// id is enough to resume that user's answer.
    /// </summary>
    public string? JwksUrl { get; set; }

    /// <summary>With <see cref="JwksUrl"/>: the token's <c>iss</c> must be this one (empty: any issuer whose token the keys verify).</summary>
    public string? JwtIssuer { get; set; }

    /// <summary>
    /// With <see cref="JwksUrl"/>: the app's origins (comma-separated, e.g. <c>https://chat.example.com</c>).
    /// The token's <c>azp</c> (the origin of the page Clerk issued it to) must be one of them, so
    /// that a token issued to another origin of the same Clerk instance (another app, a staging
    /// site) does not count; a token without <c>azp</c> (a native client's) is refused too, as
    /// some versions of Clerk's backend SDK do. Compared as origins: scheme and host in any case,
    /// the default port implied. Empty: not checked.
    /// </summary>
    public string? JwtAuthorizedParties { get; set; }

    /// <summary>
    /// The entries of <see cref="JwtAuthorizedParties"/> as origins (<see cref="Configuration.HttpUrl.Origin"/>);
    /// an entry that is not one is kept as written, so it matches nothing rather than turning the check off.
    /// </summary>
    internal string[] AuthorizedParties() => [.. AuthorizedPartyEntries().Select(p => Configuration.HttpUrl.Origin(p) ?? p)];

    private string[] AuthorizedPartyEntries() =>
        (JwtAuthorizedParties ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>With <see cref="JwksUrl"/>: how far past its <c>exp</c> (or before its <c>nbf</c>) a token is still taken; Clerk's live one minute.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan JwtClockSkew { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often a resumer following a live stream re-reads the store when no notification came.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan FollowPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How the live client learns that its answer cannot be resumed (the store failed).</summary>
    public ResumeUnavailableSignal UnavailableSignal { get; set; } = ResumeUnavailableSignal.ErrorPart;

    /// <summary>A name for this replica in the store (which replica produces a stream); empty picks the host name and a random suffix.</summary>
    public string? ReplicaId { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.IsNullOrEmpty(JwksUrl) && !Configuration.HttpUrl.IsAbsolute(JwksUrl))
        {
            yield return new ValidationResult($"must be an absolute http(s) URL; got '{JwksUrl}'.", [nameof(JwksUrl)]);
        }

        foreach (var party in AuthorizedPartyEntries())
        {
            if (Configuration.HttpUrl.Origin(party) is null)
            {
                yield return new ValidationResult($"must list origins such as https://chat.example.com (no path, query or fragment); got '{party}'.", [nameof(JwtAuthorizedParties)]);
            }
        }
    }
}

/// <summary>How a live client learns that the store failed and its answer cannot be resumed.</summary>
public enum ResumeUnavailableSignal
{
    /// <summary>
    /// Like the service itself: an <c>error</c> part with <c>category:"resume"</c> ("We couldn't enable
    /// stream resume for this session.") after <c>finish</c>, before <c>[DONE]</c>; not when the
    /// upstream already sent an error part (only the first counts).
    /// </summary>
    ErrorPart,

    /// <summary>A transient <c>data-resume-unavailable</c> part as soon as the loss is known; the answer ends normally.</summary>
    DataPart,

    /// <summary>A typed 503 before streaming when the store is already unreachable; losses mid-stream as <see cref="ErrorPart"/>.</summary>
    FailFast,

    /// <summary>Nothing is said; the metric and the log still record it.</summary>
    None,
}
