using System.Net;
using Microsoft.Extensions.Options;

namespace Sidecar.Configuration;

/// <summary>The checks data annotations cannot express; each failure names its configuration key.</summary>
internal sealed class SidecarOptionsValidator : IValidateOptions<SidecarOptions>
{
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

        foreach (var (key, port) in new[] { ("PublicPort", options.Listen.PublicPort), ("ManagementPort", options.Listen.ManagementPort) })
        {
            if (port is < 0 or > 65535)
            {
                failures.Add($"Sidecar:Listen:{key} must be a port number (0 picks a free one); got {port}.");
            }
        }

        if (options.Listen.PublicPort != 0 && options.Listen.PublicPort == options.Listen.ManagementPort)
        {
            failures.Add("Sidecar:Listen:PublicPort and Sidecar:Listen:ManagementPort must differ.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
