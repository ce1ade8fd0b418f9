using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Sidecar.Configuration;
using Sidecar.Streams.Store;

namespace Sidecar.Quota;

internal static class QuotaServiceCollectionExtensions
{
    public static IServiceCollection AddSidecarQuota(this IServiceCollection services)
    {
        services.AddSidecarOptions<QuotaOptions>(QuotaOptions.SectionName);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<QuotaOptions>, QuotaOptionsValidator>());
        services.AddHttpClient(QuotaApi.HttpClientName);
        services.AddHttpClient(Persistence.MessageRepair.HttpClientName);
        services.AddSingleton<Persistence.MessageRepair>();
        services.AddSingleton<QuotaApi>();
        // The outbox lives where the streams do: Redis when configured (shared, durable), else memory.
        services.AddSingleton<IQuotaOutbox>(sp => sp.GetRequiredService<RedisConnection>().IsConfigured
            ? ActivatorUtilities.CreateInstance<RedisQuotaOutbox>(sp)
            : new InMemoryQuotaOutbox());
        services.AddSingleton<QuotaReconciler>();
        services.AddSingleton<QuotaLedger>();
        services.AddHostedService<QuotaHostedServices>();
        return services;
    }
}

/// <summary>Starts the ledger and the reconciler only when there is work for them: a quota API, or save repair.</summary>
internal sealed class QuotaHostedServices(IOptions<QuotaOptions> options, IOptions<Persistence.PersistenceOptions> persistence, IServiceProvider services) : Microsoft.Extensions.Hosting.IHostedService
{
    private QuotaLedger? _ledger;
    private QuotaReconciler? _reconciler;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.Value.BaseUrl) && string.IsNullOrWhiteSpace(persistence.Value.RepairSaveUrl))
        {
            return;
        }

        _ledger = services.GetRequiredService<QuotaLedger>();
        _reconciler = services.GetRequiredService<QuotaReconciler>();
        await _ledger.StartAsync(cancellationToken);
        await _reconciler.StartAsync(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_reconciler is not null)
        {
            await _reconciler.StopAsync(cancellationToken);
        }

        if (_ledger is not null)
        {
            await _ledger.StopAsync(cancellationToken);
        }
    }
}

/// <summary>Checks that data annotations cannot express; failures name their keys.</summary>
internal sealed class QuotaOptionsValidator(IOptions<Persistence.PersistenceOptions> persistence, IOptions<Streams.StreamOptions> streams) : IValidateOptions<QuotaOptions>
{
    public ValidateOptionsResult Validate(string? name, QuotaOptions options)
    {
        var failures = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.BaseUrl)
            && !Configuration.HttpUrl.IsAbsolute(options.BaseUrl))
        {
            failures.Add($"Sidecar:Quota:BaseUrl must be an absolute http(s) URL; got '{options.BaseUrl}'.");
        }

        foreach (var (key, value) in new[] { ("ConfirmPath", options.ConfirmPath), ("ReleasePath", options.ReleasePath) })
        {
            if (!value.Contains("{messageId}", StringComparison.Ordinal))
            {
                failures.Add($"Sidecar:Quota:{key} must contain {{messageId}}; got '{value}'.");
            }
        }

        if (options.ClaimLease < options.AttemptTimeout * 4)
        {
            failures.Add("Sidecar:Quota:ClaimLease must be at least four times Sidecar:Quota:AttemptTimeout (a claimed item is handed back when less than two attempts' time is left).");
        }

        if (!string.IsNullOrWhiteSpace(persistence.Value.RepairSaveUrl) && options.ClaimLease < persistence.Value.ProbeAttemptTimeout * 4)
        {
            failures.Add("Sidecar:Quota:ClaimLease must be at least four times Sidecar:Persistence:ProbeAttemptTimeout when Sidecar:Persistence:RepairSaveUrl is set (a save repair's call takes up to that).");
        }

        // With the sweep on: a reservation's answer may stream for the longest stream, then wait
        // for its save's acknowledgment, and the sweep must not release it meanwhile (its stream may be live on a
        // replica whose store registration failed, where the sweep cannot see it).
        var longest = streams.Value.MaxDuration + persistence.Value.AckTimeout;
        if (!string.IsNullOrWhiteSpace(options.BaseUrl) && options.SweepInterval > TimeSpan.Zero && options.StuckAfter <= longest)
        {
            failures.Add($"Sidecar:Quota:StuckAfter must be longer than Sidecar:Streams:MaxDuration plus Sidecar:Persistence:AckTimeout ({longest}); got {options.StuckAfter}.");
        }

        if (options.MaxRetryDelay < options.RetryDelay)
        {
            failures.Add("Sidecar:Quota:MaxRetryDelay must not be shorter than Sidecar:Quota:RetryDelay.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
