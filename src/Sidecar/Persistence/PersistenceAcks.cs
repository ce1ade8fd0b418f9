using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sidecar.Streams;
using Sidecar.Streams.Store;

namespace Sidecar.Persistence;

/// <summary>Where an acknowledgment went.</summary>
internal enum AckDelivery
{
    /// <summary>A stream on this replica took it.</summary>
    Delivered,

    /// <summary>The store knows the stream: it went to every replica, the one holding the stream applies it.</summary>
    Forwarded,

    /// <summary>Neither this replica nor the store knows the message (after a short wait for its registration).</summary>
    Unknown,
}

/// <summary>
/// The acknowledgment waits of the streams on this replica, by message id, and the way an
/// acknowledgment reaches them from any replica (through the store's pub/sub).
/// </summary>
internal sealed class PersistenceAcks(
    IOptionsMonitor<PersistenceOptions> options,
    IOptions<StreamStoreOptions> storeOptions,
    IStreamStore store,
    AckProbe probe,
    TimeProvider time) : IHostedService
{
    // How long a message the store does not know may take to appear at least (its registration is
    // written in the background); no less than the store's operation timeout, which is how long a
    // stream's client and pump wait for its registration before they go on without it.
    private static readonly TimeSpan UnknownAfterAtLeast = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RegistrationPoll = TimeSpan.FromMilliseconds(50);

    private readonly ConcurrentDictionary<string, AckWaiter> _waiting = new(StringComparer.Ordinal);

    /// <summary>
    /// Starts waiting for a stream's acknowledgment (null when none is awaited), with how in-band
    /// parts are treated, all from one reading of the options.
    /// </summary>
    public (AckWaiter? Waiter, bool InBand, bool RemoveInBand) Open(ChatExchange exchange, string? messageId)
    {
        var current = options.CurrentValue;
        if (current.Mode == PersistenceAckMode.None || !StreamIds.IsValid(messageId))
        {
            return (null, false, current.RemoveInBandAck);
        }

        var waiter = new AckWaiter(messageId!, exchange.SessionId, exchange.AgentId, current.AckTimeout, time,
            current.Mode == PersistenceAckMode.Probe ? probe.RunAsync : null);
        _waiting[messageId!] = waiter;
        return (waiter, current.Mode == PersistenceAckMode.InBand, current.RemoveInBandAck);
    }

    /// <summary>The stream has ended: its wait is over.</summary>
    public void Close(AckWaiter waiter)
    {
        _waiting.TryRemove(new KeyValuePair<string, AckWaiter>(waiter.MessageId, waiter));
        waiter.Dispose();
    }

    /// <summary>An acknowledgment from a callback: applied here, or passed to the replica that holds the stream.</summary>
    public async Task<AckDelivery> DeliverAsync(string messageId, PersistenceAck ack, CancellationToken cancellationToken)
    {
        if (_waiting.TryGetValue(messageId, out var waiter))
        {
            waiter.TrySet(ack);
            return AckDelivery.Delivered;
        }

        // Published first: the replica holding the stream hears it even when the stream's
        // registration (written in the background) has not reached the store yet.
        var json = ack.ToJson();
        await store.PublishAckAsync(messageId, json, cancellationToken);
        var started = time.GetTimestamp();
        var unknownAfter = storeOptions.Value.OperationTimeout > UnknownAfterAtLeast ? storeOptions.Value.OperationTimeout : UnknownAfterAtLeast;
        while (await store.GetAsync(messageId, cancellationToken) is null)
        {
            if (time.GetElapsedTime(started) >= unknownAfter)
            {
                return AckDelivery.Unknown;
            }

            await Task.Delay(RegistrationPoll, time, cancellationToken);
        }

        // Published again now that the stream is registered: its replica opens the wait before it
        // registers the stream, so the first publication may have come before anyone waited (an
        // answer acknowledged before its stream had started here). A second ack changes nothing.
        await store.PublishAckAsync(messageId, json, cancellationToken);
        return AckDelivery.Forwarded;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        store.AckPublished += OnAckPublished;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        store.AckPublished -= OnAckPublished;
        return Task.CompletedTask;
    }

    private void OnAckPublished(string messageId, string json)
    {
        if (_waiting.TryGetValue(messageId, out var waiter)
            && PersistenceAck.Parse(System.Text.Encoding.UTF8.GetBytes(json), "callback", out _) is { } ack)
        {
            waiter.TrySet(ack);
        }
    }
}
