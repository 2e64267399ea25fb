using FsCheck;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Devices;

/// <summary>
/// <see cref="MemoryBlockDevice"/> over one <see cref="IChunkAllocator"/>: run against each allocator (a fixture per
/// allocator derives from this).
/// </summary>
public abstract class MemoryBlockDeviceContract
{
    protected abstract IChunkAllocator Allocator { get; }

    private int Chunk => Allocator.ChunkSize;

    [FsCheck.NUnit.Property(MaxTest = 25)]
    public void ReadWriteDiscard_RandomOperations_MatchAByteModel(PositiveInt seed)
    {
        var rng = new Random(seed.Get);
        // Three and a half chunks: the last chunk is partial; ranges cross chunk boundaries.
        long bytes = 3L * Chunk + Chunk / 2;
        using var disk = new MemoryBlockDevice(bytes, allocator: Allocator);
        var model = new byte[bytes];
        ulong sectors = (ulong)bytes / 512;
        for (int i = 0; i < 60; i++)
        {
            int pick = rng.Next(10);
            ulong sector;
            int count;
            if (pick == 9)
            {
                // A whole chunk (or the partial last one) discarded.
                int c = rng.Next(4);
                sector = (ulong)c * (ulong)(Chunk / 512);
                count = (int)Math.Min((ulong)(Chunk / 512), sectors - sector);
            }
            else
            {
                sector = (ulong)rng.NextInt64((long)sectors);
                count = 1 + rng.Next((int)Math.Min(sectors - sector, (ulong)(rng.Next(4) == 0 ? 2 * Chunk / 512 : 64)));
            }
            var range = model.AsSpan((int)sector * 512, count * 512);
            if (pick < 4)
            {
                var data = new byte[count * 512];
                rng.NextBytes(data);
                Assert.That(disk.Write(sector, data), Is.EqualTo(BlkifStatus.Okay));
                data.CopyTo(range);
            }
            else if (pick < 7 || pick == 9)
            {
                if (pick != 9 && rng.Next(2) == 0) { Assert.That(disk.Discard(sector, (ulong)count), Is.EqualTo(BlkifStatus.Okay)); range.Clear(); }
                else if (pick == 9) { Assert.That(disk.Discard(sector, (ulong)count), Is.EqualTo(BlkifStatus.Okay)); range.Clear(); }
                else
                {
                    var read = new byte[count * 512];
                    Assert.That(disk.Read(sector, read), Is.EqualTo(BlkifStatus.Okay));
                    Assert.That(read.AsSpan().SequenceEqual(range), Is.True, $"read of {count} sectors at {sector} (step {i})");
                }
            }
            else
            {
                var read = new byte[count * 512];
                Assert.That(disk.Read(sector, read), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(read.AsSpan().SequenceEqual(range), Is.True, $"read of {count} sectors at {sector} (step {i})");
            }
        }
        var all = new byte[bytes];
        Assert.That(disk.Read(0, all), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(all.AsSpan().SequenceEqual(model), Is.True, "the whole disk");
    }

    [Test]
    public void Write_FirstToAChunk_TakesExactlyThatChunk()
    {
        using var disk = new MemoryBlockDevice(4L * Chunk, allocator: Allocator);
        Assert.That(disk.AllocatedBytes, Is.EqualTo(0));
        var data = new byte[4096];
        data.AsSpan().Fill(0xa5);
        ulong chunkSectors = (ulong)(Chunk / 512);
        disk.Write(chunkSectors * 2 + 8, data);
        Assert.That(disk.AllocatedBytes, Is.EqualTo(Chunk), "one chunk");
        disk.Write(chunkSectors * 2 + 64, data);
        Assert.That(disk.AllocatedBytes, Is.EqualTo(Chunk), "the same chunk again");
        // Four sectors before a chunk boundary: one write, two chunks.
        disk.Write(chunkSectors - 4, data);
        Assert.That(disk.AllocatedBytes, Is.EqualTo(3L * Chunk));
        var zero = new byte[4096];
        disk.Read(chunkSectors * 3, zero);
        Assert.That(zero.AsSpan().ContainsAnyExcept((byte)0), Is.False, "an untouched chunk reads as zeroes");
    }

    [Test]
    public void Dispose_WrittenDisk_GivesTheChunksBackAndReadsZeroes()
    {
        var disk = new MemoryBlockDevice(2L * Chunk, allocator: Allocator);
        var data = new byte[8192];
        new Random(3).NextBytes(data);
        disk.Write(0, data);
        disk.Write((ulong)(Chunk / 512), data);
        disk.Dispose();
        Assert.That(disk.AllocatedBytes, Is.EqualTo(0));
        var read = new byte[8192];
        Assert.That(disk.Read(0, read), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(read.AsSpan().ContainsAnyExcept((byte)0), Is.False);
    }

    [Test]
    public void Write_ManyThreadsOnOneFreshChunk_NoWriteIsLost()
    {
        // Every thread's first write races to take the same chunk; the losers must write into the winner's.
        for (int round = 0; round < 20; round++)
        {
            using var disk = new MemoryBlockDevice(Chunk, allocator: Allocator);
            const int threads = 8;
            using var start = new Barrier(threads);
            var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
            {
                var data = new byte[512];
                data.AsSpan().Fill((byte)(t + 1));
                start.SignalAndWait();
                disk.Write((ulong)t * 3, data);
            })).ToArray();
            foreach (var w in workers) w.Start();
            foreach (var w in workers) Assert.That(w.Join(TimeSpan.FromSeconds(60)), Is.True);
            Assert.That(disk.AllocatedBytes, Is.EqualTo(Chunk), $"round {round}: one chunk taken");
            var read = new byte[512];
            for (int t = 0; t < threads; t++)
            {
                disk.Read((ulong)t * 3, read);
                Assert.That(read.AsSpan().IndexOfAnyExcept((byte)(t + 1)), Is.EqualTo(-1), $"round {round}: thread {t}'s sector");
            }
        }
    }

    [Test]
    public void ReadWrite_OutOfRangeOrReadOnly_Error()
    {
        using var disk = new MemoryBlockDevice(Chunk, allocator: Allocator);
        var buffer = new byte[1024];
        ulong last = (ulong)(Chunk / 512) - 1;
        Assert.That(disk.Read(last, buffer), Is.EqualTo(BlkifStatus.Error), "a read past the end");
        Assert.That(disk.Write(last, buffer), Is.EqualTo(BlkifStatus.Error), "a write past the end");
        Assert.That(disk.Write(0, buffer.AsSpan(0, 100)), Is.EqualTo(BlkifStatus.Error), "not whole sectors");
        using var readOnly = new MemoryBlockDevice(Chunk, readOnly: true, allocator: Allocator);
        Assert.That(readOnly.Write(0, buffer), Is.EqualTo(BlkifStatus.Error));
        Assert.That(readOnly.Discard(0, 2), Is.EqualTo(BlkifStatus.Error));
        Assert.That(readOnly.AllocatedBytes, Is.EqualTo(0));
    }

    [Test]
    public void Allocate_ChunkIsZeroedAlignedAndZeroable()
    {
        nint c = Allocator.Allocate();
        try
        {
            Assert.That((long)c % 4096, Is.EqualTo(0L), "page-aligned");
            unsafe
            {
                var span = new Span<byte>((void*)c, Chunk);
                Assert.That(span.ContainsAnyExcept((byte)0), Is.False, "zeroed");
                span.Fill(0x5a);
                Allocator.Zero(c);
                Assert.That(span.ContainsAnyExcept((byte)0), Is.False, "zero again after Zero");
                span[Chunk - 1] = 1; // still usable
            }
        }
        finally { Allocator.Free(c); }
    }
}

/// <summary>The contract over the default allocator.</summary>
public sealed class MemoryBlockDeviceNativeChunkTests : MemoryBlockDeviceContract
{
    protected override IChunkAllocator Allocator => NativeChunkAllocator.Shared;
}
