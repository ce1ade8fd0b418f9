using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Sidecar.Quota;

/// <summary>What a settlement call found.</summary>
internal enum SettleResult
{
    /// <summary>200: the reservation was <c>reserved</c> and is now settled as asked.</summary>
    Settled,

    /// <summary>409: it was settled already (the found status says how).</summary>
    AlreadySettled,

    /// <summary>404: the quota API does not know it.</summary>
    NotFound,

    /// <summary>A 5xx, a timeout, a refused connection, an open circuit, an unexpected answer: try again later.</summary>
    Failed,
}

/// <summary>
/// The quota API client. Each call goes through one Polly pipeline shared by every call: a circuit
/// breaker (a failing quota API is left alone for a while instead of being hammered by every
/// replica's outbox) around a per-attempt timeout. Retries are the outbox's: a failed item is put
/// back with a growing delay, so a restart or another replica carries them on.
/// </summary>
internal sealed class QuotaApi
{
    public const string HttpClientName = "Sidecar.Quota";

    private readonly IHttpClientFactory _httpClientFactory;
    private readonly IOptionsMonitor<QuotaOptions> _options;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;

    public QuotaApi(IHttpClientFactory httpClientFactory, IOptionsMonitor<QuotaOptions> options, TimeProvider time)
    {
        _httpClientFactory = httpClientFactory;
        _options = options;
        var o = options.CurrentValue;
        _pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
            {
                FailureRatio = o.BreakerFailureRatio,
                MinimumThroughput = o.BreakerMinimumThroughput,
                SamplingDuration = o.BreakerSamplingDuration,
                BreakDuration = o.BreakDuration,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is HttpRequestException or TimeoutRejectedException
                    || (args.Outcome.Result is { } response && (int)response.StatusCode >= 500)),
            })
            .AddTimeout(o.AttemptTimeout)
            .Build();
    }

    /// <summary>Whether the breaker lets calls through now.</summary>
    public bool IsOpen { get; private set; }

    public async Task<(SettleResult Result, string? Found, int? Status)> SettleAsync(QuotaItem item, CancellationToken cancellationToken)
    {
        var o = _options.CurrentValue;
        var path = (item.Action == QuotaAction.Confirm ? o.ConfirmPath : o.ReleasePath).Replace("{messageId}", Uri.EscapeDataString(item.MessageId), StringComparison.Ordinal).TrimStart('/');
        try
        {
            using var response = await _pipeline.ExecuteAsync(
                async token => await Client().SendAsync(new HttpRequestMessage(HttpMethod.Post, path), token),
                cancellationToken);
            IsOpen = false;
            var status = (int)response.StatusCode;
            return response.StatusCode switch
            {
                HttpStatusCode.OK => (SettleResult.Settled, null, status),
                HttpStatusCode.Conflict => (SettleResult.AlreadySettled, await FoundStatusAsync(response, cancellationToken), status),
                HttpStatusCode.NotFound => (SettleResult.NotFound, null, status),
                _ => (SettleResult.Failed, null, status),
            };
        }
        catch (BrokenCircuitException)
        {
            IsOpen = true;
            return (SettleResult.Failed, "circuit_open", null);
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Refused, or timed out: try again later. The caller's own cancellation (shutdown) propagates.
            return (SettleResult.Failed, null, null);
        }
    }

    /// <summary>Reservation ids stuck in <c>reserved</c> for longer than <paramref name="olderThan"/>.</summary>
    public async Task<IReadOnlyList<string>> ListStuckAsync(TimeSpan olderThan, CancellationToken cancellationToken)
    {
        var path = _options.CurrentValue.ListPath.Replace("{olderThanMs}", ((long)olderThan.TotalMilliseconds).ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal).TrimStart('/');
        using var response = await _pipeline.ExecuteAsync(async token => await Client().GetAsync(path, token), cancellationToken);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var entries = await JsonSerializer.DeserializeAsync(body, QuotaJsonContext.Default.ReservationEntryArray, cancellationToken) ?? [];
        return [.. entries.Where(e => e.Status is null or "reserved").Select(e => e.Id).OfType<string>()];
    }

    private HttpClient Client()
    {
        var o = _options.CurrentValue;
        var client = _httpClientFactory.CreateClient(HttpClientName);
        // Paths are relative to the base URL, path included (https://billing/quota/ + reservations/...).
        client.BaseAddress = new Uri(o.BaseUrl!.TrimEnd('/') + "/");
        if (!string.IsNullOrEmpty(o.ServiceToken))
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", o.ServiceToken);
        }

        return client;
    }

    private static async Task<string?> FoundStatusAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var body = await response.Content.ReadFromJsonAsync(QuotaJsonContext.Default.ReservationStatus, cancellationToken);
            return body?.Status;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
