namespace Sidecar.Configuration;

/// <summary>The one check of a setting that names an HTTP endpoint.</summary>
internal static class HttpUrl
{
    /// <summary>Whether <paramref name="value"/> is an absolute http or https URL.</summary>
    public static bool IsAbsolute(string? value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps);
}
