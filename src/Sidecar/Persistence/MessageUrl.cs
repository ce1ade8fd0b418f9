namespace Sidecar.Persistence;

/// <summary>The URL templates of the probe and of save repair: <c>{upstream}</c>, <c>{agentId}</c>, <c>{sessionId}</c>, <c>{messageId}</c>.</summary>
internal static class MessageUrl
{
    /// <summary>The template with its placeholders filled, each id escaped for a URL path.</summary>
    public static string Fill(string template, string upstream, string agentId, string sessionId, string messageId) => template
        .Replace("{upstream}", upstream.TrimEnd('/'), StringComparison.Ordinal)
        .Replace("{agentId}", Uri.EscapeDataString(agentId), StringComparison.Ordinal)
        .Replace("{sessionId}", Uri.EscapeDataString(sessionId), StringComparison.Ordinal)
        .Replace("{messageId}", Uri.EscapeDataString(messageId), StringComparison.Ordinal);

    /// <summary>Whether the template makes an absolute http(s) URL once filled.</summary>
    public static bool IsValid(string? template) =>
        template is not null
        && Configuration.HttpUrl.IsAbsolute(Fill(template, "http://upstream", "a", "s", "m"));
}
