namespace Sidecar.Streams;

/// <summary>
/// Validation of the ids that become parts of store keys: session, agent and message ids.
/// </summary>
/// <remarks>
/// Ids are opaque to the sidecar, but they end up in Redis keys and logs, so only a conservative
/// alphabet is accepted (letters, digits, <c>-</c>, <c>_</c>, <c>.</c>, <c>:</c>), 1 to 128
/// characters, and never a path-like value (<c>.</c> or <c>..</c>).
/// </remarks>
internal static class StreamIds
{
    public const int MaxLength = 128;

    public static bool IsValid(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength || id is "." or "..")
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
            {
                return false;
            }
        }

        return true;
    }
}
