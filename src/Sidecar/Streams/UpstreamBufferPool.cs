using System.Buffers;
using System.Collections.Concurrent;

namespace Sidecar.Streams;

/// <summary>
/// The read buffers of the upstream streams: blocks of one size, allocated pinned (the GC never
/// copies them) and kept for later reads, up to a bound. A stream's reader holds a block while
/// its read waits for the upstream, so many streams at a model's pace hold one block each most
/// of the time. The shared array pool keeps only a few dozen arrays of a size: with 200 such
/// streams most of their reads got a fresh array, alive long enough for the next collection to
/// copy it into an older generation.
/// </summary>
/// <remarks>
/// As in Kestrel's pinned block pool, a block is its own <see cref="IMemoryOwner{T}"/> and goes
/// back to the pool when disposed: a rent allocates nothing once the pool holds enough blocks.
/// Blocks past the bound are left to the GC, and so are, every <see cref="TrimInterval"/>, the
/// blocks that no rent needed since the previous trim (after a burst of streams, the pool does not
/// keep its high-water mark).
/// </remarks>
internal sealed class UpstreamBufferPool(int blockSize = UpstreamBufferPool.DefaultBlockSize, int maxRetained = UpstreamBufferPool.DefaultMaxRetained) : MemoryPool<byte>
{
    /// <summary>16 KiB: a read takes what the upstream has sent, and most parts are far smaller.</summary>
    public const int DefaultBlockSize = 16 * 1024;

    /// <summary>1,024 blocks (16 MiB) kept at most, enough for as many streams waiting at once.</summary>
    public const int DefaultMaxRetained = 1024;

    /// <summary>How often the blocks that stayed unused are let go.</summary>
    public static readonly TimeSpan TrimInterval = TimeSpan.FromSeconds(30);

    private readonly ConcurrentBag<Block> _free = [];
    private int _retained;

    // The fewest blocks kept at any moment since the last trim: that many were not needed.
    private int _fewestKept;
    private ITimer? _trimTimer;

    public override int MaxBufferSize => blockSize;

    /// <summary>Blocks kept for reuse now.</summary>
    public int Retained => Volatile.Read(ref _retained);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, blockSize);
        if (_free.TryTake(out var block))
        {
            Kept(Interlocked.Decrement(ref _retained));
        }
        else
        {
            Kept(0);
            block = new Block(this, GC.AllocateUninitializedArray<byte>(blockSize, pinned: true));
        }

        block.Lease();
        return block;
    }

    /// <summary>Trims the pool every <see cref="TrimInterval"/> from now on.</summary>
    public void StartTrimming(TimeProvider time) =>
        _trimTimer ??= time.CreateTimer(static pool => ((UpstreamBufferPool)pool!).Trim(), this, TrimInterval, TrimInterval);

    /// <summary>
    /// Lets go of the blocks that no rent needed since the previous trim (the fewest kept at any
    /// moment since then) and returns how many.
    /// </summary>
    public int Trim()
    {
        // The next interval starts now: a rent from here on lowers its mark (from what is kept
        // once this trim is done, set below unless a rent set a lower one meanwhile).
        var fewest = Interlocked.Exchange(ref _fewestKept, int.MaxValue);
        var unused = Math.Min(fewest, Retained);
        var released = 0;
        while (released < unused && _free.TryTake(out _))
        {
            Interlocked.Decrement(ref _retained);
            released++;
        }

        // A block rented between the count above and the loop may be one released here: the
        // trim then costs one fresh block, never one in use.
        Kept(Retained);
        return released;
    }

    protected override void Dispose(bool disposing)
    {
        // Blocks in use go on being used; the ones kept are left to the GC with the pool.
        _trimTimer?.Dispose();
    }

    private void Kept(int count)
    {
        // A read for each rent; a write only when the count is lower than any since the last trim.
        var fewest = Volatile.Read(ref _fewestKept);
        while (count < fewest)
        {
            var seen = Interlocked.CompareExchange(ref _fewestKept, count, fewest);
            if (seen == fewest)
            {
                return;
            }

            fewest = seen;
        }
    }

    private void Return(Block block)
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

    private sealed class Block(UpstreamBufferPool pool, byte[] array) : IMemoryOwner<byte>
    {
        private int _leased;

        public Memory<byte> Memory => Volatile.Read(ref _leased) == 1 ? array : throw new ObjectDisposedException(nameof(UpstreamBufferPool));

        public void Lease() => Volatile.Write(ref _leased, 1);

        public void Dispose()
        {
            // Once per rent: a second dispose before the block is rented again returns nothing.
            // As with any pool, an owner is not used after its dispose.
            if (Interlocked.Exchange(ref _leased, 0) == 1)
            {
                pool.Return(this);
            }
        }
    }
}
