using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Sidecar.Configuration;

/// <summary>
/// Data-annotation validation of an options section whose failures name the full configuration
/// key (<c>Sidecar:Streams:UpstreamIdleTimeout: ...</c>), so that an operator knows what to fix.
/// </summary>
internal sealed class SectionValidator<T>(string section) : IValidateOptions<T>
    where T : class
{
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Options types are preserved by their binding.")]
    public ValidateOptionsResult Validate(string? name, T options)
    {
        var results = new List<ValidationResult>();
        if (Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
        {
            return ValidateOptionsResult.Success;
        }

        return ValidateOptionsResult.Fail(results.Select(r =>
            $"{section}:{string.Join(",", r.MemberNames)}: {r.ErrorMessage}"));
    }
}
