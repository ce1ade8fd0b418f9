using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sidecar.Sse;
using Sidecar.Streams;
using Sidecar.Streams.Store;
using Sidecar.Telemetry;

namespace Sidecar.Benchmarks;

/// <summary>Framing and parsing of 10,000 text-delta events of about 100 bytes, as they arrive in 4 KiB reads.</summary>
[MemoryDiagnoser]
public class SseReaderBenchmarks
{
    private const int Events = 10_000;
    private byte[] _body = [];

    [GlobalSetup]
    public void Setup()
    {
        var text = new StringBuilder();
        for (var i = 0; i < Events; i++)
        {
            text.Append("data: {\"type\":\"text-delta\",\"id\":\"txt_0\",\"delta\":\"").Append(i).Append(' ').Append('x', 40).Append("\"}\n\n");
        }

        _body = Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>Framing only: event boundaries found, nothing copied.</summary>
    [Benchmark(OperationsPerInvoke = Events)]
    public int Frame() => Run(parse: false);

    /// <summary>Framing, the copy and the part sniff (JSON validated): what the pump does per event.</summary>
    [Benchmark(OperationsPerInvoke = Events)]
    public int FrameAndParse() => Run(parse: true);

    /// <summary>Feeds the body in 4 KiB reads, each starting where the previous event ended, as the pump's pipe does.</summary>
    private int Run(bool parse)
    {
        var reader = new SseEventReader(1 << 20);
        var count = 0;
        var offset = 0;
        var start = 0;
        while (offset < _body.Length)
        {
            var end = Math.Min(_body.Length, offset + 4096);
            var pending = new ReadOnlySequence<byte>(_body, start, end - start);
            offset = end;
            while (reader.TryRead(ref pending, offset == _body.Length, out var bytes) is SseReadStatus.Event or SseReadStatus.Fragment)
            {
                count += !parse || SseEvent.Parse(bytes, terminated: true).Part.Type == UiPartType.TextDelta ? 1 : 0;
            }

            start = end - (int)pending.Length;
        }

        return count;
    }
}

/// <summary>The store append path: events handed to the tee, batched by the writer, applied to the in-memory store.</summary>
[MemoryDiagnoser]
public class StoreAppendBenchmarks
{
    private const int Streams = 100;
    private const int EventsPerStream = 100;
    private ServiceProvider _services = null!;
    private StoreWriter _writer = null!;
    private InMemoryStreamStore _store = null!;
    private byte[] _event = [];

    [GlobalSetup]
    public async Task Setup()
    {
        _services = new ServiceCollection().AddMetrics().AddSingleton<SidecarMetrics>().BuildServiceProvider();
        var storeOptions = Options.Create(new StreamStoreOptions { InMemoryMaxBytes = 4L << 30 });
        var store = _store = new InMemoryStreamStore(storeOptions, Options.Create(new StreamOptions()), TimeProvider.System);
        _writer = new StoreWriter(store, storeOptions, TimeProvider.System, _services.GetRequiredService<SidecarMetrics>(), NullLogger<StoreWriter>.Instance);
        await _writer.StartAsync(CancellationToken.None);
        _event = Encoding.UTF8.GetBytes("data: {\"type\":\"text-delta\",\"id\":\"txt_0\",\"delta\":\"" + new string('x', 50) + "\"}\n\n");
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _writer.StopAsync(CancellationToken.None);
        await _services.DisposeAsync();
    }

    /// <summary>100 streams × 100 events appended; the time until the last stream's end is stored.</summary>
    [Benchmark(OperationsPerInvoke = Streams * EventsPerStream)]
    public async Task AppendAndStore()
    {
        var tees = new StreamTee[Streams];
        var last = string.Empty;
        for (var s = 0; s < Streams; s++)
        {
            last = Guid.NewGuid().ToString("N");
            tees[s] = _writer.Open(new StreamRegistration(last, "s" + last, "c010", "owner", "bench", DateTimeOffset.UtcNow.AddMinutes(1)));
        }

        for (var e = 0; e < EventsPerStream; e++)
        {
            foreach (var tee in tees)
            {
                tee.Append(e, _event);
            }
        }

        foreach (var tee in tees)
        {
            tee.End(StoredStreamState.Completed);
        }

        // The writer is one queue: once the last stream's end is stored, every write before it is.
        await using var follower = await _store.FollowAsync(last, CancellationToken.None);
        while (true)
        {
            var mark = follower.Mark;
            if ((await _store.GetAsync(last, CancellationToken.None))?.State is StoredStreamState.Completed)
            {
                return;
            }

            await follower.WaitAsync(mark, TimeSpan.FromSeconds(1), CancellationToken.None);
        }
    }
}
