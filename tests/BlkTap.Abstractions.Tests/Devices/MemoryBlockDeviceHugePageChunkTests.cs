using BlkTap.Linux.Memory;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Devices;

/// <summary>The contract over BlkTap.Linux's huge-page allocator, and what makes it one.</summary>
public sealed class MemoryBlockDeviceHugePageChunkTests : MemoryBlockDeviceContract
{
    protected override IChunkAllocator Allocator => HugePageChunkAllocator.Shared;

    [Test]
    public void Allocate_Chunk_AlignedToTwoMebibytesAndAdvisedHugePage()
    {
        nint c = Allocator.Allocate();
        try
        {
            Assert.That(Allocator.ChunkSize, Is.EqualTo(2 << 20));
            Assert.That((long)c % (2 << 20), Is.EqualTo(0L), "a chunk can only be one huge page if it starts on a 2 MiB boundary");
            // The kernel lists MADV_HUGEPAGE as the 'hg' flag of the mapping that holds the chunk (proc(5), smaps VmFlags).
            string? flags = null;
            bool inside = false;
            foreach (var line in File.ReadLines("/proc/self/smaps"))
            {
                if (char.IsAsciiHexDigit(line[0]) && line.Contains('-') && !line.Contains(':' + " "))
                {
                    var range = line.Split(' ')[0].Split('-');
                    long lo = Convert.ToInt64(range[0], 16), hi = Convert.ToInt64(range[1], 16);
                    inside = lo <= c && c + (2 << 20) <= hi;
                }
                else if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal)) { flags = line; break; }
            }
            Assert.That(flags, Is.Not.Null, "the chunk's mapping is in /proc/self/smaps");
            Assert.That(flags!.Split(' ', StringSplitOptions.RemoveEmptyEntries), Does.Contain("hg"), flags);
        }
        finally { Allocator.Free(c); }
    }
}
