using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Sidecar.Streams;

/// <summary>
/// Who started a stream, as a hash: only that principal may resume or stop it. The raw
/// credential is never stored.
/// </summary>
/// <remarks>
/// The identity is, in order: the bearer token, the Clerk session cookie (<c>__session</c>), or
/// the anonymous session (<c>anon_{sessionId}</c>, as the service names it). A credential that is
/// a JWT counts by its issuer and subject, because Clerk re-issues the session token every
/// minute and a reload must still resume. With <see cref="ResumeOptions.JwksUrl"/> set, resume and
/// stop first verify such a token's signature (<see cref="ResumeTokenVerifier"/>); without it, the
/// issuer and subject are taken as written, and the binding is one more thing to know besides the
/// session id, not an authentication.
/// </remarks>
internal static class OwnerIdentity
{
    private static readonly byte[] Domain = "c010-sidecar-owner-v1\0"u8.ToArray();

    /// <summary>
    /// The owner hash of the request's principal: HMAC-SHA256 with <paramref name="key"/> when one is
    /// configured (so that a reader of Redis cannot test guesses), else a domain-separated SHA-256.
    /// </summary>
    public static string Hash(HttpRequest request, string sessionId, string? key = null)
    {
        var identity = RawCredential(request) is var (kind, value) ? Credential(kind, value) : "anon:anon_" + sessionId;

        var bytes = new byte[Domain.Length + Encoding.UTF8.GetByteCount(identity)];
        Domain.CopyTo(bytes, 0);
        Encoding.UTF8.GetBytes(identity, bytes.AsSpan(Domain.Length));
        return string.IsNullOrEmpty(key)
            ? Convert.ToHexStringLower(SHA256.HashData(bytes))
            : Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), bytes));
    }

    /// <summary>Whether the request carries a credential (a bearer token or the Clerk session cookie).</summary>
    public static bool IsSignedIn(HttpRequest request) => RawCredential(request) is not null;

    /// <summary>
    /// The request's credential when it counts as a JWT's issuer and subject (the token to verify
    /// before its owner binding is trusted), else null: no credential, or an opaque one, which
    /// counts whole.
    /// </summary>
    public static string? Jwt(HttpRequest request) =>
        RawCredential(request) is var (_, value) && JwtSubject(value) is not null ? value : null;

    /// <summary>The bearer token, else the Clerk session cookie, with its kind; null for neither.</summary>
    private static (string Kind, string Value)? RawCredential(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization.Length > 7)
        {
            return ("bearer", authorization[7..].Trim());
        }

        return request.Cookies["__session"] is { Length: > 0 } cookie ? ("session", cookie) : null;
    }

    private static string Credential(string kind, string value) =>
        JwtSubject(value) is { } subject ? $"jwt:{subject}" : $"{kind}:{value}";

    /// <summary>The <c>iss</c> and <c>sub</c> of a JWT's payload, or null when the value is not a JWT with a subject.</summary>
    private static string? JwtSubject(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3 || parts[1].Length is 0 or > 8192)
        {
            return null;
        }

        try
        {
            var payload = parts[1].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
            using var document = JsonDocument.Parse(Convert.FromBase64String(payload));
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("sub", out var sub) || sub.ValueKind != JsonValueKind.String)
            {
                return null;
            }

            var issuer = root.TryGetProperty("iss", out var iss) && iss.ValueKind == JsonValueKind.String ? iss.GetString() : string.Empty;
            return $"{issuer}|{sub.GetString()}";
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            return null;
        }
    }
}
