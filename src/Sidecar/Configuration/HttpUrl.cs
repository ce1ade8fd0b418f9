using System.Diagnostics.CodeAnalysis;

namespace Sidecar.Configuration;

/// <summary>The one check of a setting that names an HTTP endpoint or origin.</summary>
internal static class HttpUrl
{
    /// <summary>Whether <paramref name="value"/> is an absolute http or https URL.</summary>
    public static bool IsAbsolute(string? value) => TryParse(value, out _);

    /// <summary>
    /// <paramref name="value"/> as an origin, <c>scheme://host[:port]</c> with scheme and host in lower
    /// case and no default port; null when it is not an http(s) origin (a path, query, fragment or
    /// user part).
    /// </summary>
    public static string? Origin(string? value) =>
        TryParse(value, out var url) && url.AbsolutePath == "/" && url.Query.Length == 0 && url.Fragment.Length == 0 && url.UserInfo.Length == 0
            ? url.GetLeftPart(UriPartial.Authority)
            : null;

    private static bool TryParse(string? value, [NotNullWhen(true)] out Uri? url) =>
        Uri.TryCreate(value, UriKind.Absolute, out url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps);
}
