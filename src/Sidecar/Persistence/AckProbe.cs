using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using Sidecar.Configuration;
using Sidecar.Telemetry;

namespace Sidecar.Persistence;

/// <summary>
/// Asks the service whether an answer was saved: a GET to <see cref="PersistenceOptions.ProbeUrl"/>,
/// retried with exponential backoff and jitter (each attempt time-boxed) until it answers 200 or
/// the acknowledgment deadline passes.
/// </summary>
internal sealed class AckProbe(
    IHttpClientFactory httpClientFactory,
    IOptionsMonitor<PersistenceOptions> options,
    IOptionsMonitor<SidecarOptions> sidecarOptions,
    TimeProvider time,
    ILogger<AckProbe> logger)
{
    public const string HttpClientName = "Sidecar.PersistenceProbe";

    public async Task RunAsync(AckWaiter waiter, CancellationToken deadline)
    {
        var current = options.CurrentValue;
        var url = ProbeUrl(current.ProbeUrl!, sidecarOptions.CurrentValue.UpstreamUrl, waiter);
        var pipeline = new ResiliencePipelineBuilder<bool> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<bool>
            {
                // Not saved yet (or no answer): ask again, unless the wait is already decided.
                ShouldHandle = args => ValueTask.FromResult(!waiter.Result.IsCompleted
                    && (args.Outcome.Exception is HttpRequestException or TimeoutRejectedException || args.Outcome.Result == false)),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = current.ProbeRetryDelay,
                MaxDelay = current.ProbeMaxRetryDelay,
                MaxRetryAttempts = int.MaxValue,
            })
            .AddTimeout(current.ProbeAttemptTimeout)
            .Build();
        var http = httpClientFactory.CreateClient(HttpClientName);
        try
        {
            var saved = await pipeline.ExecuteAsync(
                async token =>
                {
                    using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, token);
                    return response.StatusCode == HttpStatusCode.OK;
                },
                deadline);
            if (saved)
            {
                waiter.TrySet(new PersistenceAck(AckStatus.Saved, "probe"));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or TimeoutRejectedException)
        {
            // The deadline passed (the wait ends without an ack) or the last attempt failed.
            Log.ProbeGaveUp(logger, waiter.SessionId, waiter.MessageId, ex.GetType().Name);
        }
    }

    /// <summary>The probe URL of a waiting answer.</summary>
    public static Uri ProbeUrl(string template, string upstream, AckWaiter waiter) =>
        new(MessageUrl.Fill(template, upstream, waiter.AgentId, waiter.SessionId, waiter.MessageId));
}
