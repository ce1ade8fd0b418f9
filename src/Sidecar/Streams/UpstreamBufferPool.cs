using System.Buffers;
using System.Collections.Concurrent;

namespace Sidecar.Streams;

/// <summary>
/// The read buffers of the upstream streams: blocks of one size, allocated pinned (so that the
/// GC never copies them) and kept for the next stream, up to a bound. A stream holds its block
/// while it lives; with the shared array pool, which keeps only a few dozen of a size, many
/// streams starting together each allocated a fresh one, and every collection during their
/// answers copied those blocks into an older generation.
/// </summary>
internal sealed class UpstreamBufferPool(int blockSize, int maxRetained) : MemoryPool<byte>
{
    private readonly ConcurrentBag<byte[]> _free = [];
    private int _retained;

    /// <summary>The pool of the process's upstream readers: 16 KiB blocks, up to 1,024 kept (16 MiB).</summary>
    public static UpstreamBufferPool Default { get; } = new(16 * 1024, 1024);

    public override int MaxBufferSize => blockSize;

    /// <summary>Blocks kept for reuse now.</summary>
    public int Retained => Volatile.Read(ref _retained);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, blockSize);
        if (_free.TryTake(out var block))
        {
            Interlocked.Decrement(ref _retained);
        }
        else
        {
            block = GC.AllocateUninitializedArray<byte>(blockSize, pinned: true);
        }

        return new Lease(this, block);
    }

    protected override void Dispose(bool disposing)
    {
        // Shared by every stream of the process: blocks stay until the process ends.
    }

    private void Return(byte[] block)
    {
        if (Interlocked.Increment(ref _retained) <= maxRetained)
        {
            _free.Add(block);
        }
        else
        {
            // Past the bound (after a burst of streams): let the GC have it.
            Interlocked.Decrement(ref _retained);
        }
    }

    private sealed class Lease(UpstreamBufferPool pool, byte[] block) : IMemoryOwner<byte>
    {
        private byte[]? _block = block;

        public Memory<byte> Memory => _block ?? throw new ObjectDisposedException(nameof(Lease));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _block, null) is { } returned)
            {
                pool.Return(returned);
            }
        }
    }
}
