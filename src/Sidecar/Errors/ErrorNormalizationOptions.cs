using System.ComponentModel.DataAnnotations;

namespace Sidecar.Errors;

/// <summary>
/// How non-2xx bodies of the chat route are normalised to the contract's error shape
/// (section <c>Sidecar:Errors</c>). The tables are options so that new codes need no release.
/// </summary>
public sealed class ErrorNormalizationOptions
{
    public const string SectionName = "Sidecar:Errors";

    /// <summary>Whether chat-route error bodies are normalised at all.</summary>
    public bool Normalize { get; set; } = true;

    /// <summary>Bodies larger than this are passed through unparsed.</summary>
    [Range(1024, 16 * 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// For bodies without a <c>type</c> (the billing guard's <c>{error, message, code, details}</c>):
    /// the mapping of their <c>code</c>.
    /// </summary>
    public Dictionary<string, ErrorMapping> Codes { get; set; } = new(StringComparer.Ordinal)
    {
        ["QUOTA_RESERVATION_ERROR"] = new() { Type = "USAGE_LIMIT_EXCEEDED", Category = "quota", Severity = "recoverable", Source = "billing" },
        ["MODEL_NOT_ALLOWED"] = new() { Type = "MODEL_ACCESS_DENIED", Category = "access", Severity = "recoverable", Source = "billing" },
        ["FEATURE_NOT_ALLOWED"] = new() { Type = "MODEL_ACCESS_DENIED", Category = "access", Severity = "recoverable", Source = "billing" },
        ["INTERNAL_ERROR"] = new() { Type = "SERVER_ERROR", Category = "server", Severity = "recoverable", Source = "billing" },
    };

    /// <summary>
    /// For bodies with a <c>type</c> but without <c>source</c>, <c>category</c> or <c>severity</c>
    /// (the memory errors): what to add, by type. Types not listed get <see cref="Fallback"/>'s.
    /// </summary>
    public Dictionary<string, ErrorMapping> Types { get; set; } = new(StringComparer.Ordinal)
    {
        ["INVALID_REQUEST"] = new() { Category = "request", Severity = "recoverable", Source = "server" },
        ["SERVER_ERROR"] = new() { Category = "server", Severity = "recoverable", Source = "server" },
    };

    /// <summary>
    /// The <c>type</c> of a body that names none and whose <c>code</c> is not in <see cref="Codes"/>,
    /// by HTTP status (what an ingress or a crash answers); other statuses get <see cref="Fallback"/>'s type.
    /// </summary>
    public Dictionary<int, string> StatusTypes { get; set; } = new()
    {
        [400] = "INVALID_REQUEST",
        [401] = "AUTHENTICATION",
        [413] = "PAYLOAD_TOO_LARGE",
        [429] = "RATE_LIMIT",
        [502] = "SERVICE_UNAVAILABLE",
        [503] = "SERVICE_UNAVAILABLE",
        [504] = "TIMEOUT",
    };

    /// <summary>What a body gets when nothing above says otherwise (a non-JSON body: an HTML crash page).</summary>
    public ErrorMapping Fallback { get; set; } = new() { Type = "SERVER_ERROR", Category = "server", Severity = "recoverable", Source = "upstream" };
}

/// <summary>The fields one error code or type maps to; null fields are left alone.</summary>
public sealed class ErrorMapping
{
    /// <summary>The contract's <c>type</c> (e.g. <c>USAGE_LIMIT_EXCEEDED</c>).</summary>
    public string? Type { get; set; }

    /// <summary>The contract's <c>category</c> (<c>stream</c>, <c>persistence</c> and <c>resume</c> show the client's inline banner).</summary>
    public string? Category { get; set; }

    /// <summary><c>recoverable</c> or <c>fatal</c> (fatal shows the client's full-page error).</summary>
    public string? Severity { get; set; }

    /// <summary>The contract's <c>source</c> (<c>guard</c> shows the client's full-page error).</summary>
    public string? Source { get; set; }
}
