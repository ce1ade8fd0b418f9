using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using StackExchange.Redis;

namespace Sidecar.Bench;

/// <summary>What a stream's stored copy holds: state (0 live, 1 completed, 2 failed), incomplete flag, events.</summary>
internal sealed record StoredStream(int State, bool Incomplete, List<byte[]> Events);

/// <summary>A quota reservation as the emulator's ledger lists it.</summary>
internal sealed record ReservationRow(string Id, string Status, int Settlements);

/// <summary>
/// Two sidecar replicas (A and B) sharing a <c>redis-server</c>, in front of the emulator (which
/// also plays the quota API), each a separate process, restartable on its ports.
/// </summary>
internal sealed class Rig : IAsyncDisposable
{
    private readonly string _sidecarDll;
    private readonly string _emulatorDll;
    private readonly int _redisPort = ChildProcess.FreePort();
    private readonly int _emulatorPort = ChildProcess.FreePort();
    private readonly int _aPort = ChildProcess.FreePort();
    private readonly int _aManagement = ChildProcess.FreePort();
    private Process _redis = null!;
    private string[] _extra = [];

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private Rig(string root, string configuration, string prefix)
    {
        Prefix = prefix;
        _sidecarDll = Path.Combine(root, "src/Sidecar/bin", configuration, "net10.0/Sidecar.dll");
        _emulatorDll = Path.Combine(root, "samples/ChatUpstream/bin", configuration, "net10.0/ChatUpstream.dll");
    }

    public HttpClient Http { get; } = new(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = 1000 }) { Timeout = Timeout.InfiniteTimeSpan };

    public ConnectionMultiplexer Redis { get; private set; } = null!;

    public ChildProcess Emulator { get; private set; } = null!;

    public ChildProcess A { get; private set; } = null!;

    public ChildProcess B { get; private set; } = null!;

    private int BPort { get; set; }

    /// <summary>The store's key prefix (one per run).</summary>
    public string Prefix { get; }

    public static async Task<Rig> StartAsync(string root, string configuration, string prefix, params string[] extra)
    {
        var rig = new Rig(root, configuration, prefix) { _extra = extra };
        rig.StartRedis();
        rig.Redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{rig._redisPort},abortConnect=false,allowAdmin=true,connectTimeout=2000,syncTimeout=5000");
        await rig.RestartEmulatorAsync();
        await rig.RestartAAsync();
        (rig.B, rig.BPort) = await ChildProcess.StartSidecarAsync(rig._sidecarDll, rig._emulatorPort, rig.SidecarArgs());
        return rig;
    }

    public int PortOf(ChildProcess sidecar) => ReferenceEquals(sidecar, A) ? _aPort : BPort;

    private string[] SidecarArgs() =>
    [
        $"--Sidecar:Store:Redis=127.0.0.1:{_redisPort}", $"--Sidecar:Store:KeyPrefix={Prefix}",
        "--Sidecar:Store:LeaseDuration=00:00:07", "--Sidecar:Store:OperationTimeout=00:00:00.500", "--Sidecar:Store:WriteRetryWindow=00:00:04",
        "--Sidecar:Streams:MaxClientBacklogBytes=65536",
        $"--Sidecar:Quota:BaseUrl=http://127.0.0.1:{_emulatorPort}", "--Sidecar:Quota:PollInterval=00:00:00.200",
        "--Sidecar:Quota:RetryDelay=00:00:00.200", "--Sidecar:Quota:MaxRetryDelay=00:00:01", "--Sidecar:Quota:BreakDuration=00:00:01",
        "--Sidecar:Quota:AttemptTimeout=00:00:02", .. _extra,
    ];

    public void StartRedis() => _redis = ChildProcess.StartRedis(_redisPort);

    public void KillRedis()
    {
        _redis.Kill();
        _redis.WaitForExit(10_000);
        _redis.Dispose();
    }

    public async Task RestartEmulatorAsync()
    {
        Emulator?.Dispose();
        Emulator = await ChildProcess.StartAsync(_emulatorDll, ["--urls", $"http://127.0.0.1:{_emulatorPort}", "--Emulator:DefaultPaceMs=0"], _emulatorPort, "/");
    }

    public async Task RestartAAsync()
    {
        A?.Dispose();
        (A, _) = await ChildProcess.StartSidecarAsync(_sidecarDll, _emulatorPort, SidecarArgs(), port: _aPort, management: _aManagement);
    }

    public async Task EmulatorControlAsync(string path)
    {
        using var response = await Http.PostAsync(new Uri($"http://127.0.0.1:{_emulatorPort}{path}"), null);
        response.EnsureSuccessStatusCode();
    }

    public async Task<List<ReservationRow>> ReservationsAsync()
    {
        var json = await Http.GetStringAsync(new Uri($"http://127.0.0.1:{_emulatorPort}/reservations"));
        using var document = JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateArray().Select(r => new ReservationRow(r.GetProperty("id").GetString()!, r.GetProperty("status").GetString()!, r.GetProperty("settlements").GetInt32()))];
    }

    public Task<HttpResponseMessage> ResumeAsync(ChildProcess sidecar, string session) =>
        Http.GetAsync(new Uri($"http://127.0.0.1:{PortOf(sidecar)}/api/v/c010/{session}"), HttpCompletionOption.ResponseHeadersRead);

    /// <summary>The sum of a metric's samples on a sidecar's Prometheus scrape (those whose labels contain <paramref name="label"/>).</summary>
    public Task<double> MetricAsync(ChildProcess sidecar, string name, string? label = null) =>
        ChildProcess.MetricAsync(Http, sidecar.ManagementPort, name, label);

    /// <summary>What Redis holds for a message (read directly, not through the sidecar), or null.</summary>
    public async Task<StoredStream?> StoredAsync(string messageId)
    {
        try
        {
            var db = Redis.GetDatabase();
            var meta = await db.HashGetAllAsync($"{Prefix}:{{msg:{messageId}}}:meta");
            if (meta.Length == 0)
            {
                return null;
            }

            var fields = meta.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString());
            var entries = await db.StreamRangeAsync($"{Prefix}:{{msg:{messageId}}}:events");
            return new StoredStream(int.Parse(fields["state"], CultureInfo.InvariantCulture), fields["incomplete"] != "0", [.. entries.SelectMany(EventsOf)]);
        }
        catch (RedisException)
        {
            return null;
        }
    }

    /// <summary>
    /// One stream entry's events: its <c>d</c> field, cut by the comma-separated lengths of its
    /// <c>n</c> field when it holds several (the store's layout, read here on its own).
    /// </summary>
    private static IEnumerable<byte[]> EventsOf(StreamEntry entry)
    {
        var data = (byte[])entry["d"]!;
        var lengths = entry["n"];
        if (lengths.IsNull)
        {
            yield return data;
            yield break;
        }

        var offset = 0;
        foreach (var length in lengths.ToString().Split(',').Select(l => int.Parse(l, CultureInfo.InvariantCulture)))
        {
            yield return data[offset..(offset + length)];
            offset += length;
        }
    }

    /// <summary>Polls until <paramref name="probe"/> returns a value (or the bound passes: null).</summary>
    public static async Task<T?> WaitAsync<T>(Func<Task<T?>> probe, TimeSpan? bound = null)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < (bound ?? Bound))
        {
            if (await probe() is { } value)
            {
                return value;
            }

            await Task.Delay(100);
        }

        return default;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (Redis is not null)
        {
            await Redis.DisposeAsync();
        }

        A?.Dispose();
        B?.Dispose();
        Emulator?.Dispose();
        if (!_redis.HasExited)
        {
            _redis.Kill();
            _redis.WaitForExit(10_000);
        }

        _redis.Dispose();
    }
}
