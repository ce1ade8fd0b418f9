using System.Runtime.InteropServices;
using Microsoft.Extensions.Time.Testing;
using Sidecar.Streams;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

public sealed class UpstreamBufferPoolTests
{
    [Fact]
    public void Rent_AfterAReturn_HandsOutTheSameBlock_WithoutAllocating()
    {
        var pool = new UpstreamBufferPool(4096, maxRetained: 4);
        var lease = pool.Rent();
        var block = Array(lease.Memory);
        Assert.Equal(4096, block.Length);
        lease.Dispose();
        Assert.Equal(1, pool.Retained);

        using var again = pool.Rent(100);

        Assert.Same(lease, again);
        Assert.Same(block, Array(again.Memory));
        Assert.Equal(0, pool.Retained);
    }

    [Fact]
    public void Return_KeepsAtMostTheBound_AndADoubleDisposeReturnsOnce()
    {
        var pool = new UpstreamBufferPool(1024, maxRetained: 2);
        var leases = Enumerable.Range(0, 3).Select(_ => pool.Rent()).ToList();

        leases[0].Dispose();
        leases[0].Dispose();
        Assert.Equal(1, pool.Retained);

        leases[1].Dispose();
        leases[2].Dispose();
        Assert.Equal(2, pool.Retained);
        Assert.Throws<ObjectDisposedException>(() => leases[2].Memory);
    }

    [Fact]
    public void Rent_LargerThanABlock_IsRefused()
    {
        var pool = new UpstreamBufferPool(1024, maxRetained: 2);

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(1025));
    }

    [Fact]
    public void Trim_LetsGoOfTheBlocksNoRentNeededSinceTheLastTrim()
    {
        var pool = new UpstreamBufferPool(1024, maxRetained: 8);
        ReturnAll(Enumerable.Range(0, 6).Select(_ => pool.Rent()).ToList());
        Assert.Equal(6, pool.Retained);

        // The six were all needed at once since the last trim (here: since the pool began).
        Assert.Equal(0, pool.Trim());
        Assert.Equal(6, pool.Retained);

        // Two at most in use at any moment until the next trim: four stayed unused.
        ReturnAll([pool.Rent(), pool.Rent()]);
        ReturnAll([pool.Rent()]);
        Assert.Equal(4, pool.Trim());
        Assert.Equal(2, pool.Retained);

        // Nothing rented since: the rest goes too, and rents go on working after.
        Assert.Equal(2, pool.Trim());
        Assert.Equal(0, pool.Retained);
        using var lease = pool.Rent();
        Assert.Equal(1024, lease.Memory.Length);
    }

    [Fact]
    public void Trimming_OnTheTimer_KeepsWhatIsInUseEachInterval_AndLetsTheRestGo()
    {
        var time = new FakeTimeProvider();
        using var pool = new UpstreamBufferPool(1024, maxRetained: 16);
        pool.StartTrimming(time);
        ReturnAll(Enumerable.Range(0, 10).Select(_ => pool.Rent()).ToList());

        // A steady three streams reading through two intervals: their three blocks stay.
        for (var interval = 0; interval < 2; interval++)
        {
            ReturnAll([pool.Rent(), pool.Rent(), pool.Rent()]);
            time.Advance(UpstreamBufferPool.TrimInterval);
        }

        Assert.Equal(3, pool.Retained);

        // They end: one interval later nothing is kept.
        time.Advance(UpstreamBufferPool.TrimInterval);
        Assert.Equal(0, pool.Retained);
    }

    [Fact]
    public async Task RentsReturnsAndTrims_AtOnce_KeepTheCountOfKeptBlocksTrue()
    {
        var pool = new UpstreamBufferPool(256, maxRetained: 64);
        using var stop = new CancellationTokenSource();
        var trimmingStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var trimming = Task.Run(() =>
        {
            var trims = 0;
            do
            {
                pool.Trim();
                Assert.InRange(pool.Retained, 0, 64);
                trims++;
                trimmingStarted.TrySetResult();
            }
            while (!stop.IsCancellationRequested);

            return trims;
        });

        // The renters start once the trims have, so that the two run at once on a loaded machine too.
        await trimmingStarted.Task.DefaultTimeout();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 20_000; i++)
            {
                ReturnAll(Enumerable.Range(0, 1 + (i % 8)).Select(_ => pool.Rent()).ToList());
            }
        }))).DefaultTimeout();
        await stop.CancelAsync();
        Assert.True(await trimming.DefaultTimeout() > 0);

        // The count is the blocks there are to rent: renting that many empties it, and the next
        // rent is a fresh block (a count above the blocks kept would stay above zero; one below
        // would go negative).
        var kept = pool.Retained;
        var blocks = Enumerable.Range(0, kept).Select(_ => pool.Rent()).ToList();
        Assert.Equal(0, pool.Retained);
        Assert.Equal(kept, blocks.Distinct().Count());
        using var fresh = pool.Rent();
        Assert.Equal(0, pool.Retained);
    }

    private static void ReturnAll(List<System.Buffers.IMemoryOwner<byte>> leases) => leases.ForEach(l => l.Dispose());

    private static byte[] Array(Memory<byte> memory) =>
        MemoryMarshal.TryGetArray<byte>(memory, out var segment) ? segment.Array! : throw new InvalidOperationException("not an array");
}
