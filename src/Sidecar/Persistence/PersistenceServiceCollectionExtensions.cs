using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Sidecar.Configuration;

namespace Sidecar.Persistence;

internal static class PersistenceServiceCollectionExtensions
{
    public static IServiceCollection AddSidecarPersistence(this IServiceCollection services)
    {
        services.AddSidecarOptions<PersistenceOptions>(PersistenceOptions.SectionName);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PersistenceOptions>, PersistenceOptionsValidator>());
        services.AddHttpClient(AckProbe.HttpClientName);
        services.AddSingleton<AckProbe>();
        services.AddSingleton<PersistenceAcks>();
        services.AddHostedService(sp => sp.GetRequiredService<PersistenceAcks>());
        return services;
    }
}

/// <summary>What each acknowledgment mode needs; failures name their keys.</summary>
internal sealed class PersistenceOptionsValidator : IValidateOptions<PersistenceOptions>
{
    public ValidateOptionsResult Validate(string? name, PersistenceOptions options)
    {
        var failures = new List<string>();
        if (options.Mode == PersistenceAckMode.Callback && (options.CallbackToken is null || options.CallbackToken.Length < 16))
        {
            failures.Add("Sidecar:Persistence:CallbackToken must be set (at least 16 characters) when Sidecar:Persistence:Mode is Callback.");
        }

        if (options.Mode == PersistenceAckMode.Probe)
        {
            if (!MessageUrl.IsValid(options.ProbeUrl) || !options.ProbeUrl!.Contains("{messageId}", StringComparison.Ordinal))
            {
                failures.Add($"Sidecar:Persistence:ProbeUrl must be an absolute http(s) URL template naming {{messageId}} when Sidecar:Persistence:Mode is Probe; got '{options.ProbeUrl}'.");
            }
        }

        if (!string.IsNullOrWhiteSpace(options.RepairSaveUrl))
        {
            if (!MessageUrl.IsValid(options.RepairSaveUrl))
            {
                failures.Add($"Sidecar:Persistence:RepairSaveUrl must be an absolute http(s) URL template; got '{options.RepairSaveUrl}'.");
            }
        }

        if (options.ProbeMaxRetryDelay < options.ProbeRetryDelay)
        {
            failures.Add("Sidecar:Persistence:ProbeMaxRetryDelay must not be shorter than Sidecar:Persistence:ProbeRetryDelay.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
