using Microsoft.AspNetCore.Http;

namespace Sidecar.Proxy;

/// <summary>Recognises the chat route, <c>/api/v/{agentId}/{sessionId}</c>.</summary>
internal static class ChatRoute
{
    private const string Prefix = "/api/v/";

    /// <summary>
    /// Matches exactly two non-empty segments after <c>/api/v/</c>. Anything else (a missing
    /// segment, extra segments) is left to the upstream, which answers it per the contract.
    /// </summary>
    public static bool TryMatch(PathString path, out string agentId, out string sessionId)
    {
        agentId = sessionId = string.Empty;
        var value = path.Value;
        if (value is null || !value.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = value.AsSpan(Prefix.Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0 || slash == rest.Length - 1 || rest[(slash + 1)..].Contains('/'))
        {
            return false;
        }

        agentId = rest[..slash].ToString();
        sessionId = rest[(slash + 1)..].ToString();
        return true;
    }
}
