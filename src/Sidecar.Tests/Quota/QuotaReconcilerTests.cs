using System.Net.Http.Headers;
using ChatUpstream;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Quota;
using Sidecar.Streams.Store;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Quota;

/// <summary>
/// Reservations settled through the emulator's quota API, from the outcome of each stream: confirm
/// when it completed, release when it failed, each exactly once, across failures, replicas and restarts.
/// </summary>
public sealed class QuotaReconcilerTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly string _prefix = RedisServer.NewPrefix();
    private EmulatorServer _emulator = null!;

    public async Task InitializeAsync() => _emulator = await EmulatorServer.StartAsync();

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    [Theory]
    [InlineData("deltas:2", "confirmed")]
    [InlineData("end:5", "released")]
    [InlineData("stream-error:5", "released")]
    // The service's own persistence error: the answer was not saved, the user does not pay.
    [InlineData("persist-error deltas:2", "released")]
    public async Task StreamEnds_ItsReservationIsSettledOnceAccordingToItsOutcome(string scenario, string expected)
    {
        await using var sidecar = await StartSidecarAsync();
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();

        var reservation = await StreamAsync(client, session, "/scenario " + scenario);

        Assert.Equal(expected, await reservation.Settled.DefaultTimeout());
        await WaitForEmptyOutboxAsync(sidecar);
        Assert.Equal("sidecar", reservation.SettledBy);
        Assert.Equal(1, reservation.ConfirmCalls + reservation.ReleaseCalls);
    }

    [Fact]
    public async Task FailedStreamWithItsClientConnected_IsReleasedAtOnce_NotThroughTheOutbox()
    {
        await using var sidecar = await StartSidecarAsync();
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var response = await client.SendAsync(Signed(Chat.Post(session, "/scenario end:5")), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var reservation = _emulator.Quota.Find(response.Headers.GetValues("x-message-id").Single())!;
        // Released before the client's response ends.
        var parts = Endings.Parts(Chat.Text(await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync()));

        Assert.Equal("released", reservation.Status);
        Assert.DoesNotContain(parts, p => p.Contains("data-quota-warning", StringComparison.Ordinal));
        var (pump, _) = await ended.DefaultTimeout();
        Assert.True(pump.Exchange.ReservationSettled);
        Assert.Equal(0, (await sidecar.Services.GetRequiredService<IQuotaOutbox>().StatsAsync(default)).Depth);
        Assert.Equal(1, reservation.ReleaseCalls);
    }

    [Fact]
    public async Task ReleaseFailsWhileTheClientIsConnected_ItIsWarned_AndTheOutboxReleasesLater()
    {
        _emulator.Options.QuotaFailureRate = 1.0;
        await using var sidecar = await StartSidecarAsync();
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var response = await client.SendAsync(Signed(Chat.Post(session, "/scenario end:5")), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var parts = Endings.Parts(Chat.Text(await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync()));
        var reservation = _emulator.Quota.Find(response.Headers.GetValues("x-message-id").Single())!;

        // The warning comes before the error part: the client stops reading at the error.
        Endings.AssertErrorEnding(parts, "SERVER_ERROR", "stream", "ended_without_finish");
        using var warning = System.Text.Json.JsonDocument.Parse(parts[^3]);
        Assert.Equal("data-quota-warning", warning.RootElement.GetProperty("type").GetString());
        Assert.Equal(reservation.Id, warning.RootElement.GetProperty("data").GetProperty("reservationId").GetString());
        Assert.True(warning.RootElement.GetProperty("transient").GetBoolean());

        await ended.DefaultTimeout();
        _emulator.Options.QuotaFailureRate = 0;
        Assert.Equal("released", await reservation.Settled.DefaultTimeout());
    }

    [Fact]
    public async Task StopGenerating_ReleasesTheReservation()
    {
        await using var sidecar = await StartSidecarAsync();
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        using var response = await client.SendAsync(Signed(Chat.Post(session, "/scenario gate:4")), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();
        await record.GateReached.DefaultTimeout();
        var reservation = _emulator.Quota.Find(record.MessageId)!;

        using var stop = await client.SendAsync(Signed(Chat.Stop(session))).DefaultTimeout();

        Assert.Equal("released", await reservation.Settled.DefaultTimeout());
    }

    [Fact]
    public async Task AnonymousStream_HoldsNoReservation()
    {
        await using var sidecar = await StartSidecarAsync();
        using var client = sidecar.CreateClient();
        var session = Chat.NewSession();
        var ended = sidecar.PumpEnded(session);

        using var response = await client.SendAsync(Chat.Post(session, "/scenario deltas:1")).DefaultTimeout();
        await response.Content.ReadAsStringAsync();
        var (pump, _) = await ended.DefaultTimeout();

        Assert.Null(pump.Exchange.ReservationId);
        Assert.Null(_emulator.Quota.Find(pump.State.MessageId!));
    }

    [Fact]
    public async Task QuotaApiFailingHalfTheCalls_EveryReservationIsSettledExactlyOnce()
    {
        _emulator.Options.QuotaFailureRate = 0.5;
        await using var sidecar = await StartSidecarAsync();
        using var client = sidecar.CreateClient();

        var reservations = new List<Reservation>();
        for (var i = 0; i < 20; i++)
        {
            reservations.Add(await StreamAsync(client, Chat.NewSession(), i % 2 == 0 ? "/scenario deltas:1" : "/scenario end:3"));
        }

        await Task.WhenAll(reservations.Select(r => r.Settled)).DefaultTimeout();
        await WaitForEmptyOutboxAsync(sidecar);
        Assert.All(reservations, r => Assert.Equal(1, r.Settlements));
        // One call per reservation reached the ledger: the failed ones were answered 503 before it.
        Assert.All(reservations, r => Assert.Equal(1, r.ConfirmCalls + r.ReleaseCalls));
        Assert.True(_emulator.Quota.Calls.Failed >= 10, $"{_emulator.Quota.Calls}");
    }

    [Fact]
    public async Task ThreeReplicasOnOneOutbox_NeverSettleAReservationTwice()
    {
        await using var a = await StartSidecarAsync(replica: "a");
        await using var b = await StartSidecarAsync(replica: "b");
        await using var c = await StartSidecarAsync(replica: "c");
        var outbox = a.Services.GetRequiredService<IQuotaOutbox>();
        var reservations = new List<Reservation>();
        for (var i = 0; i < 60; i++)
        {
            var id = "r" + Guid.NewGuid().ToString("N")[..16];
            reservations.Add(_emulator.Quota.Reserve(id, DateTimeOffset.UtcNow));
            await outbox.EnqueueAsync(new QuotaItem(id, i % 2 == 0 ? QuotaAction.Confirm : QuotaAction.Release, "test", null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), default);
        }

        foreach (var sidecar in new[] { a, b, c })
        {
            sidecar.Services.GetRequiredService<QuotaReconciler>().Wake();
        }

        await Task.WhenAll(reservations.Select(r => r.Settled)).DefaultTimeout();
        await WaitForEmptyOutboxAsync(a);
        Assert.All(reservations, r => Assert.Equal(1, r.ConfirmCalls + r.ReleaseCalls));
    }

    [Fact]
    public async Task ClaimOfAReplicaThatDied_IsTakenOverWhenItsLeaseLapses()
    {
        await using var sidecar = await StartSidecarAsync(_time);
        var outbox = sidecar.Services.GetRequiredService<IQuotaOutbox>();
        var reconciler = sidecar.Services.GetRequiredService<QuotaReconciler>();
        var id = "r" + Guid.NewGuid().ToString("N")[..16];
        var reservation = _emulator.Quota.Reserve(id, DateTimeOffset.UtcNow);
        // Due in an hour, so that only the replica below can claim it (this sidecar's reconciler runs meanwhile).
        var later = _time.GetUtcNow().AddHours(1);
        await outbox.EnqueueAsync(new QuotaItem(id, QuotaAction.Release, "test", null, later.ToUnixTimeMilliseconds()), default);

        // A replica claimed it (lease 30 s) and died.
        Assert.Single(await outbox.ClaimAsync("dead-replica", later, later.AddSeconds(30), 10, default));
        await RoundAsync(reconciler, TimeSpan.FromHours(1) + TimeSpan.FromSeconds(29));
        Assert.False(reservation.Settled.IsCompleted);

        await RoundAsync(reconciler, TimeSpan.FromSeconds(1));
        Assert.Equal("released", await reservation.Settled.DefaultTimeout());
    }

    [Fact]
    public async Task FailedItems_AreTriedAgainOnlyAfterTheirBackoff()
    {
        _emulator.Options.QuotaFailureRate = 1.0;
        await using var sidecar = await StartSidecarAsync(_time, new() { ["Sidecar:Quota:RetryDelay"] = "00:00:10", ["Sidecar:Quota:MaxRetryDelay"] = "00:01:00" });
        var outbox = sidecar.Services.GetRequiredService<IQuotaOutbox>();
        var reconciler = sidecar.Services.GetRequiredService<QuotaReconciler>();
        var id = "r" + Guid.NewGuid().ToString("N")[..16];
        var reservation = _emulator.Quota.Reserve(id, DateTimeOffset.UtcNow);
        await outbox.EnqueueAsync(new QuotaItem(id, QuotaAction.Confirm, "test", null, _time.GetUtcNow().ToUnixTimeMilliseconds()), default);

        await RoundAsync(reconciler, TimeSpan.Zero);
        var callsAfterFirstTry = _emulator.Quota.Calls.Calls;
        Assert.True(callsAfterFirstTry >= 1);

        // The first retry is due between 5 and 10 s later (10 s with jitter in its upper half).
        await RoundAsync(reconciler, TimeSpan.FromSeconds(4.9));
        Assert.Equal(callsAfterFirstTry, _emulator.Quota.Calls.Calls);

        _emulator.Options.QuotaFailureRate = 0;
        await RoundAsync(reconciler, TimeSpan.FromSeconds(5.2));
        Assert.Equal("confirmed", await reservation.Settled.DefaultTimeout());
    }

    [Fact]
    public async Task QuotaApiDown_TheCircuitBreakerStopsTheCalls_AndTheItemsWait()
    {
        _emulator.Options.QuotaFailureRate = 1.0;
        await using var sidecar = await StartSidecarAsync(settings: new()
        {
            ["Sidecar:Quota:BreakerMinimumThroughput"] = "2",
            ["Sidecar:Quota:BreakerFailureRatio"] = "0.5",
            ["Sidecar:Quota:BreakDuration"] = "00:01:00",
            ["Sidecar:Quota:RetryDelay"] = "00:01:00",
            ["Sidecar:Quota:MaxRetryDelay"] = "00:05:00",
        });
        var outbox = sidecar.Services.GetRequiredService<IQuotaOutbox>();
        using var metrics = new MeasurementRecorder(sidecar);
        for (var i = 0; i < 10; i++)
        {
            var id = "r" + Guid.NewGuid().ToString("N")[..16];
            _emulator.Quota.Reserve(id, DateTimeOffset.UtcNow);
            await outbox.EnqueueAsync(new QuotaItem(id, QuotaAction.Release, "test", null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), default);
        }

        sidecar.Services.GetRequiredService<QuotaReconciler>().Wake();
        await WaitUntilAsync(sidecar, () => Task.FromResult(metrics.Sum("sidecar.quota.settlements", ("outcome", "retry")) >= 10));

        // Every item was tried and put back for later; only the calls before the breaker opened reached the API.
        Assert.InRange(_emulator.Quota.Calls.Calls, 2, 3);
        Assert.Equal(10, (await outbox.StatsAsync(default)).Depth);
        Assert.All(_emulator.Quota.All, r => Assert.Equal("reserved", r.Status));
    }

    [Fact]
    public async Task ShutdownDuringASettlement_TheClaimIsHandedBack_AndAnotherReplicaSettlesItAtOnce()
    {
        _emulator.Options.QuotaLatencyMs = 60_000;
        var lease = new Dictionary<string, string?> { ["Sidecar:Quota:ClaimLease"] = "00:10:00" };
        var outbox = default(IQuotaOutbox);
        var id = "r" + Guid.NewGuid().ToString("N")[..16];
        var reservation = _emulator.Quota.Reserve(id, DateTimeOffset.UtcNow);
        await using (var first = await StartSidecarAsync(settings: lease, replica: "first"))
        {
            outbox = first.Services.GetRequiredService<IQuotaOutbox>();
            await outbox.EnqueueAsync(new QuotaItem(id, QuotaAction.Confirm, "test", null, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), default);
            first.Services.GetRequiredService<QuotaReconciler>().Wake();

            // The call is in flight (the quota API takes a minute to answer) when the replica stops.
            await WaitUntilAsync(first, () => Task.FromResult(_emulator.Quota.Calls.Calls >= 1));
        }

        _emulator.Options.QuotaLatencyMs = 0;
        await using var second = await StartSidecarAsync(settings: lease, replica: "second");

        // Long before the ten-minute lease would have lapsed.
        Assert.Equal("confirmed", await reservation.Settled.DefaultTimeout());
        Assert.Equal("sidecar", reservation.SettledBy);
    }

    [Fact]
    public async Task RestartWithItemsWaiting_EveryItemStillSettles()
    {
        _emulator.Options.QuotaFailureRate = 1.0;
        var reservations = new List<Reservation>();
        await using (var first = await StartSidecarAsync(replica: "first"))
        {
            using var client = first.CreateClient();
            for (var i = 0; i < 5; i++)
            {
                reservations.Add(await StreamAsync(client, Chat.NewSession(), "/scenario end:3"));
            }

            var outbox = first.Services.GetRequiredService<IQuotaOutbox>();
            await WaitUntilAsync(first, async () => (await outbox.StatsAsync(default)).Depth == 5);
        }

        Assert.All(reservations, r => Assert.Equal("reserved", r.Status));
        _emulator.Options.QuotaFailureRate = 0;
        await using var second = await StartSidecarAsync(replica: "second");

        Assert.All(await Task.WhenAll(reservations.Select(r => r.Settled)).DefaultTimeout(), s => Assert.Equal("released", s));
    }

    [Fact]
    public async Task Sweep_ReleasesOnlyStaleReservationsWithoutALiveStream()
    {
        await using var sidecar = await StartSidecarAsync(_time, new() { ["Sidecar:Quota:SweepInterval"] = "00:05:00", ["Sidecar:Quota:StuckAfter"] = "00:45:00" });
        var reconciler = sidecar.Services.GetRequiredService<QuotaReconciler>();
        var store = sidecar.Services.GetRequiredService<IStreamStore>();
        var longAgo = DateTimeOffset.UtcNow.AddHours(-2);
        var stale = _emulator.Quota.Reserve("stale" + Guid.NewGuid().ToString("N")[..12], longAgo);
        var staleButLive = _emulator.Quota.Reserve("live" + Guid.NewGuid().ToString("N")[..12], longAgo);
        var recent = _emulator.Quota.Reserve("recent" + Guid.NewGuid().ToString("N")[..12], DateTimeOffset.UtcNow);
        // The confirmation of this one is still on its way into the outbox (Redis was away).
        var confirming = _emulator.Quota.Reserve("confirming" + Guid.NewGuid().ToString("N")[..12], longAgo);
        var onItsWay = reconciler.Enqueuing(QuotaItem.SettlementKey(confirming.Id));
        // A stream of the second is live on some replica.
        await store.WriteAsync([new StreamWrite(staleButLive.Id) { Begin = new StreamRegistration(staleButLive.Id, "s-live", "c010", "owner", "other-replica", _time.GetUtcNow().AddMinutes(1)) }], default);

        await RoundAsync(reconciler, TimeSpan.FromMinutes(5));
        Assert.Equal("released", await stale.Settled.DefaultTimeout());
        await RoundAsync(reconciler, TimeSpan.Zero);

        Assert.Equal("reserved", staleButLive.Status);
        Assert.Equal("reserved", recent.Status);
        Assert.Equal("reserved", confirming.Status);

        // Had it never reached the outbox, the next sweep would release it.
        onItsWay.Dispose();
        await RoundAsync(reconciler, TimeSpan.FromMinutes(5));
        Assert.Equal("released", await confirming.Settled.DefaultTimeout());
    }

    [Fact]
    public async Task ReleaseThatFindsTheReservationConfirmed_IsCountedAsAMismatch()
    {
        // The service confirms as soon as its handler answers; the stream then fails.
        _emulator.Options.SelfSettle = true;
        await using var sidecar = await StartSidecarAsync();
        using var mismatches = new InstrumentCounter(sidecar, "sidecar.quota.mismatches");
        using var client = sidecar.CreateClient();

        var reservation = await StreamAsync(client, Chat.NewSession(), "/scenario stream-error:5");

        await mismatches.WaitForTotalAsync(1).DefaultTimeout();
        Assert.Equal("confirmed", reservation.Status);
        Assert.Equal("service", reservation.SettledBy);
    }

    private async Task<SidecarServer> StartSidecarAsync(TimeProvider? time = null, Dictionary<string, string?>? settings = null, string? replica = null)
    {
        var all = new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = _prefix,
            ["Sidecar:Quota:BaseUrl"] = _emulator.Address.ToString(),
            ["Sidecar:Quota:PollInterval"] = "00:00:00.050",
            ["Sidecar:Quota:RetryDelay"] = "00:00:00.050",
            ["Sidecar:Quota:MaxRetryDelay"] = "00:00:00.200",
            ["Sidecar:Quota:BreakDuration"] = "00:00:00.500",
            ["Sidecar:Quota:BreakerMinimumThroughput"] = "1000",
            ["Sidecar:Quota:SweepInterval"] = "00:00:00",
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
            ["Sidecar:Resume:ReplicaId"] = replica,
        };
        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }

        return await SidecarServer.StartAsync(_emulator.Address, all, time);
    }

    /// <summary>Streams one signed-in answer to its end and returns its reservation.</summary>
    private async Task<Reservation> StreamAsync(HttpClient client, string session, string text)
    {
        using var response = await client.SendAsync(Signed(Chat.Post(session, text)), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();
        var record = await _emulator.Journal.ForSession(session).DefaultTimeout();
        return _emulator.Quota.Find(record.MessageId) ?? throw new InvalidOperationException("the answer holds no reservation");
    }

    private static HttpRequestMessage Signed(HttpRequestMessage request)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "token-of-alice");
        return request;
    }

    /// <summary>Advances the clock, wakes the reconciler and waits for a round that started after both.</summary>
    private async Task RoundAsync(QuotaReconciler reconciler, TimeSpan advance)
    {
        _time.Advance(advance);
        for (var i = 0; i < 2; i++)
        {
            // Two rounds: the first may have started before the clock moved.
            var round = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnRound() => round.TrySetResult();
            reconciler.RoundCompleted += OnRound;
            try
            {
                reconciler.Wake();
                await round.Task.DefaultTimeout();
            }
            finally
            {
                reconciler.RoundCompleted -= OnRound;
            }
        }
    }

    private static async Task WaitForEmptyOutboxAsync(SidecarServer sidecar) =>
        await WaitUntilAsync(sidecar, async () => (await sidecar.Services.GetRequiredService<IQuotaOutbox>().StatsAsync(default)).Depth == 0);

    /// <summary>Checks <paramref name="condition"/> after each reconciler round until it holds.</summary>
    private static async Task WaitUntilAsync(SidecarServer sidecar, Func<Task<bool>> condition)
    {
        var reconciler = sidecar.Services.GetRequiredService<QuotaReconciler>();
        using var timeout = new CancellationTokenSource(TaskTimeoutExtensions.DefaultTimeoutSpan);
        while (true)
        {
            // Listening before looking: a round that ends between the look and the wait is not
            // missed (the last round before a long pause would leave the wait to its timeout).
            var round = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnRound() => round.TrySetResult();
            reconciler.RoundCompleted += OnRound;
            try
            {
                if (await condition())
                {
                    return;
                }

                await round.Task.WaitAsync(timeout.Token);
            }
            finally
            {
                reconciler.RoundCompleted -= OnRound;
            }
        }
    }
}
