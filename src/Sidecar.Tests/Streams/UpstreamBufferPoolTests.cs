using System.Runtime.InteropServices;
using Sidecar.Streams;

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

    private static byte[] Array(Memory<byte> memory) =>
        MemoryMarshal.TryGetArray<byte>(memory, out var segment) ? segment.Array! : throw new InvalidOperationException("not an array");
}
