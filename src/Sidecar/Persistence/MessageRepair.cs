using System.Net;
using System.Text;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;
using Sidecar.Quota;

namespace Sidecar.Persistence;

/// <summary>What a save repair attempt found.</summary>
internal enum RepairResult
{
    /// <summary>2xx: the message is saved.</summary>
    Saved,

    /// <summary>A 4xx other than 408 and 429: the service will not take it; retrying would not help.</summary>
    Rejected,

    /// <summary>5xx, 408, 429, a timeout, an open circuit: try again later.</summary>
    Failed,
}

/// <summary>
/// Submits an answer whose save failed to <see cref="PersistenceOptions.RepairSaveUrl"/>: a POST of
/// <c>{"sessionId", "message"}</c>, the message being the <c>UIMessage</c> rebuilt from the stream's
/// parts. Behind its own circuit breaker and per-attempt timeout; retries are the outbox's.
/// </summary>
internal sealed class MessageRepair
{
    public const string HttpClientName = "Sidecar.MessageRepair";

    private readonly IHttpClientFactory _httpClientFactory;
    private readonly IOptionsMonitor<PersistenceOptions> _options;
    private readonly IOptionsMonitor<Configuration.SidecarOptions> _sidecar;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;

    public MessageRepair(IHttpClientFactory httpClientFactory, IOptionsMonitor<PersistenceOptions> options, IOptionsMonitor<Configuration.SidecarOptions> sidecar, TimeProvider time)
    {
        _httpClientFactory = httpClientFactory;
        _options = options;
        _sidecar = sidecar;
        _pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is HttpRequestException or TimeoutRejectedException
                    || (args.Outcome.Result is { } response && (int)response.StatusCode >= 500)),
            })
            .AddTimeout(options.CurrentValue.ProbeAttemptTimeout)
            .Build();
        AttemptTimeout = options.CurrentValue.ProbeAttemptTimeout;
    }

    /// <summary>The longest one save call takes (the probe's attempt timeout, fixed at start).</summary>
    public TimeSpan AttemptTimeout { get; }

    public async Task<(RepairResult Result, int? Status)> SaveAsync(QuotaItem item, CancellationToken cancellationToken)
    {
        var template = _options.CurrentValue.RepairSaveUrl;
        if (string.IsNullOrWhiteSpace(template) || item.Payload is null)
        {
            return (RepairResult.Rejected, null);
        }

        var url = new Uri(MessageUrl.Fill(template, _sidecar.CurrentValue.UpstreamUrl, string.Empty, item.SessionId ?? string.Empty, item.MessageId));
        try
        {
            using var response = await _pipeline.ExecuteAsync(
                async token =>
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, url)
                    {
                        Content = new StringContent(item.Payload, Encoding.UTF8, "application/json"),
                    };
                    if (_options.CurrentValue.RepairToken is { Length: > 0 } bearer)
                    {
                        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
                    }

                    return await _httpClientFactory.CreateClient(HttpClientName).SendAsync(request, token);
                },
                cancellationToken);
            var status = (int)response.StatusCode;
            // 401/403 are a configuration error to fix, not a message to give up on: they are retried.
            return response.IsSuccessStatusCode ? (RepairResult.Saved, status)
                : status is >= 400 and < 500 && response.StatusCode is not (HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden) ? (RepairResult.Rejected, status)
                : (RepairResult.Failed, status);
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or BrokenCircuitException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return (RepairResult.Failed, null);
        }
    }
}
