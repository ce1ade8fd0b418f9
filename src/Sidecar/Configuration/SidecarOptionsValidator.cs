using System.Net;
using Microsoft.Extensions.Options;

namespace Sidecar.Configuration;

/// <summary>The checks data annotations cannot express; each failure names its configuration key.</summary>
internal sealed class SidecarOptionsValidator : IValidateOptions<SidecarOptions>
{
    private static readonly SectionValidator<ListenOptions> ListenValidator = new(SidecarOptions.SectionName + ":Listen");

    public ValidateOptionsResult Validate(string? name, SidecarOptions options)
    {
        var failures = new List<string>();
        if (!HttpUrl.IsAbsolute(options.UpstreamUrl))
        {
            failures.Add($"Sidecar:UpstreamUrl must be an absolute http(s) URL; got '{options.UpstreamUrl}'.");
        }

        if (!IPAddress.TryParse(options.Listen.Address, out _))
        {
            failures.Add($"Sidecar:Listen:Address must be an IP address (0.0.0.0, ::, 127.0.0.1, ...); got '{options.Listen.Address}'.");
        }

        // The nested section's own annotations (ports, timeouts, the connection limit): the root's
        // validation does not descend into it.
        if (ListenValidator.Validate(name, options.Listen) is { Failed: true } listen)
        {
            failures.AddRange(listen.Failures);
        }

        if (options.Listen.PublicPort != 0 && options.Listen.PublicPort == options.Listen.ManagementPort)
        {
            failures.Add("Sidecar:Listen:PublicPort and Sidecar:Listen:ManagementPort must differ.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
