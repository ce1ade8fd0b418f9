using System.Collections.Concurrent;

namespace ChatUpstream;

/// <summary>A quota reservation as the service's billing store holds it.</summary>
public sealed class Reservation(string id, DateTimeOffset createdAt)
{
    private readonly Lock _gate = new();
    private int _confirmCalls;
    private int _releaseCalls;
    private int _settlements;
    private readonly TaskCompletionSource<string> _settled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Id { get; } = id;

    public DateTimeOffset CreatedAt { get; } = createdAt;

    /// <summary><c>reserved</c>, <c>confirmed</c>, <c>released</c> or <c>expired</c>.</summary>
    public string Status { get; private set; } = "reserved";

    /// <summary>Confirm calls received (from the sidecar and from the emulated service itself).</summary>
    public int ConfirmCalls => Volatile.Read(ref _confirmCalls);

    public int ReleaseCalls => Volatile.Read(ref _releaseCalls);

    /// <summary>How many calls changed the status: exactly one for a reservation settled once.</summary>
    public int Settlements => Volatile.Read(ref _settlements);

    /// <summary>Completes with the status when the reservation is first settled.</summary>
    public Task<string> Settled => _settled.Task;

    /// <summary>Who settled it: <c>sidecar</c> or <c>service</c>.</summary>
    public string? SettledBy { get; private set; }

    /// <summary>Moves <c>reserved</c> to <paramref name="target"/>; otherwise reports what it already is.</summary>
    public (bool Changed, string Status) Settle(string target, string by)
    {
        lock (_gate)
        {
            Interlocked.Increment(ref target == "confirmed" ? ref _confirmCalls : ref _releaseCalls);
            if (Status != "reserved")
            {
                return (false, Status);
            }

            Status = target;
            SettledBy = by;
            _settlements++;
            _settled.TrySetResult(target);
            return (true, Status);
        }
    }
}

/// <summary>The emulated billing store: one reservation per assistant message of a signed-in user.</summary>
public sealed class QuotaLedger
{
    private readonly ConcurrentDictionary<string, Reservation> _reservations = new(StringComparer.Ordinal);

    public IReadOnlyList<Reservation> All => [.. _reservations.Values];

    public Reservation? Find(string id) => _reservations.TryGetValue(id, out var r) ? r : null;

    public Reservation Reserve(string id, DateTimeOffset now)
    {
        var reservation = _reservations.GetOrAdd(id, _ => new Reservation(id, now));
        Reserved?.Invoke(reservation);
        return reservation;
    }

    /// <summary>Raised when a chat POST reserves quota.</summary>
    public event Action<Reservation>? Reserved;

    private long _calls;
    private long _failed;
    private volatile bool _down;

    /// <summary>While true, every quota API call fails (503): the quota API is down.</summary>
    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    /// <summary>
    /// Whether this quota API call fails (503), spreading failures evenly at <paramref name="rate"/>:
    /// deterministic, so that a test knows exactly what fraction failed.
    /// </summary>
    public bool NextCallFails(double rate)
    {
        var n = Interlocked.Increment(ref _calls);
        if (_down)
        {
            Interlocked.Increment(ref _failed);
            return true;
        }

        if (rate <= 0)
        {
            return false;
        }

        var fails = (long)Math.Floor(n * rate) > (long)Math.Floor((n - 1) * rate);
        if (fails)
        {
            Interlocked.Increment(ref _failed);
        }

        return fails;
    }

    /// <summary>Quota API calls answered, and how many of them failed on purpose.</summary>
    public (long Calls, long Failed) Calls => (Interlocked.Read(ref _calls), Interlocked.Read(ref _failed));
}
