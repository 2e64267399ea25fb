using System.Diagnostics;
using System.Runtime.InteropServices;
using BlkTap.Chains;
using BlkTap.Examples;
using BlkTap.Linux.Storage;
using BlkTap.Storage;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Bench;

/// <summary>
/// The <c>img</c> tap against plain positional I/O on the same page-cached file in /dev/shm: 4 KiB
/// random reads and writes, qd 32 (a full ring per loop pass), one thread each. Two baselines: .NET's
/// <see cref="RandomAccess"/> (the "raw"), and the very file object img serves from (<see cref="IStorageFile"/>
/// of the OS provider: on /dev/shm a pread or pwrite without the runtime's GC transition), so the second ratio is what
/// the runtime, the ring and the tap add to the system calls themselves.
/// </summary>
internal static class ImgBenchmarks
{
    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        long bytes = ctx.Quick ? 16L << 20 : 256L << 20;
        int batches = ctx.Quick ? 200 : 1_000;
        int rounds = ctx.Quick ? 1 : 31;
        int ops = batches * 32;
        ctx.Progress("img: creating the image in " + ctx.ScratchDirectory);
        var path = ctx.CreateImage("img.raw", bytes);
        var tap = new ImgTap(path, readOnly: false);
        var mappedTap = new ImgTap(path, readOnly: false, map: true);
        // Ours and raw alternate, round by round and in alternating order, so that drift of the machine (other guests,
        // steal time) hits both alike; each figure is the median of its rounds.
        var ourRead = new List<double>(); var rawRead = new List<double>(); var fileRead = new List<double>();
        var ourWrite = new List<double>(); var rawWrite = new List<double>(); var fileWrite = new List<double>();
        var mapRead = new List<double>(); var mapWrite = new List<double>();
        try
        {
            using var h = new RingHarness(rt => TapChain.Register(rt, [tap]));
            using var hm = new RingHarness(rt => TapChain.Register(rt, [mappedTap]));
            if (h.Sectors != (ulong)bytes / 512) throw new InvalidOperationException($"img sized the disk {h.Sectors} sectors, expected {bytes / 512}");
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            using var file = LinuxStorageProvider.Shared.Open(path, StorageOpenOptions.Writable);
            // Warm up the three paths (JIT tiering, the page cache's pages of the image).
            RuntimeBenchmarks.Measure(h, batches * 4, BlkifOperation.Read);
            RuntimeBenchmarks.Measure(hm, batches * 4, BlkifOperation.Read);
            RawLoop(handle, null, bytes, ops * 4, write: false);
            RawLoop(null, file, bytes, ops * 4, write: false);
            for (int r = 0; r < rounds; r++)
            {
                ctx.Progress($"img: round {r + 1} of {rounds}: tap, RandomAccess, the storage file and the mapped tap, reads then writes");
                foreach (var op in new[] { BlkifOperation.Read, BlkifOperation.Write })
                {
                    bool write = op == BlkifOperation.Write;
                    // The four take turns being first, round by round.
                    for (int k = 0; k < 4; k++)
                    {
                        switch ((k + r) % 4)
                        {
                            case 0: (write ? ourWrite : ourRead).Add(RuntimeBenchmarks.Measure(h, batches, op).Rate); break;
                            case 1: (write ? rawWrite : rawRead).Add(RawLoop(handle, null, bytes, ops, write)); break;
                            case 2: (write ? fileWrite : fileRead).Add(RawLoop(null, file, bytes, ops, write)); break;
                            default: (write ? mapWrite : mapRead).Add(RuntimeBenchmarks.Measure(hm, batches, op).Rate); break;
                        }
                    }
                }
            }
        }
        finally { tap.Dispose(); mappedTap.Dispose(); }
        File.Delete(path);
        const string baseline = "RandomAccess.Read/Write loop, same file, same offsets, into 32 rotating page buffers, same process; goal >= 0.8";
        string Note(List<double> ours, List<double> raw)
        {
            var ratios = ours.Zip(raw, (a, b) => a / b).ToList();
            return $"{bytes >> 20} MiB image in {ctx.ScratchDirectory} (page cache); median of {rounds} interleaved short round(s) of {ops:N0} requests, "
                + $"per-round ratio {ratios.Min():F2}-{ratios.Max():F2}";
        }
        yield return new BenchResult("img vs raw: 4 KiB random read, qd 32", BenchStats.Median(ourRead), BenchStats.Median(rawRead), "IOPS", baseline, Note: Note(ourRead, rawRead));
        yield return new BenchResult("img vs raw: 4 KiB random write, qd 32", BenchStats.Median(ourWrite), BenchStats.Median(rawWrite), "IOPS", baseline, Note: Note(ourWrite, rawWrite));
        const string fileBaseline = "IStorageFile.Read/Write loop on the OS provider's file img serves from (on /dev/shm: pread/pwrite without the GC transition), same offsets and buffers: what the runtime, the ring and the tap add";
        yield return new BenchResult("img vs its storage file's own calls: 4 KiB random read, qd 32", BenchStats.Median(ourRead), BenchStats.Median(fileRead), "IOPS", fileBaseline, Note: Note(ourRead, fileRead));
        yield return new BenchResult("img vs its storage file's own calls: 4 KiB random write, qd 32", BenchStats.Median(ourWrite), BenchStats.Median(fileWrite), "IOPS", fileBaseline, Note: Note(ourWrite, fileWrite));
        const string mapBaseline = "the same RandomAccess loop as the lines above (not like for like: img's map=true copies through a mapping where raw makes a system call); information, no goal";
        yield return new BenchResult("img map=true vs raw: 4 KiB random read, qd 32", BenchStats.Median(mapRead), BenchStats.Median(rawRead), "IOPS", mapBaseline, Note: Note(mapRead, rawRead) + "; a dense image whose pages a warm-up of random reads touched first");
        yield return new BenchResult("img map=true vs raw: 4 KiB random write, qd 32", BenchStats.Median(mapWrite), BenchStats.Median(rawWrite), "IOPS", mapBaseline, Note: Note(mapWrite, rawWrite) + "; a dense image whose pages a warm-up of random reads touched first");
    }

    /// <summary>
    /// Plain positional I/O at the same random 4 KiB-aligned offsets the harness uses, into the same kind of memory:
    /// one page-aligned 4 KiB buffer per ring slot (32), used in turn, as the harness's guest places its requests. The
    /// destination pages are part of the workload, not of the tap: one hot buffer would flatter the baseline. Through
    /// <paramref name="handle"/> (<see cref="RandomAccess"/>) when given, else through <paramref name="file"/>.
    /// </summary>
    private static unsafe double RawLoop(SafeFileHandle? handle, IStorageFile? file, long bytes, int ops, bool write)
    {
        const int Buffers = 32;
        var block = (byte*)NativeMemory.AlignedAlloc(Buffers * 4096, 4096);
        try
        {
            new Span<byte>(block, Buffers * 4096).Fill(0x5a);
            ulong slots = (ulong)(bytes / 512 - 8) / 8;
            ulong rng = 12345UL;
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < ops; i++)
            {
                long offset = (long)BenchStats.NextSlotSector(ref rng, slots) * 512;
                var buffer = new Span<byte>(block + (i % Buffers) * 4096, 4096);
                if (handle != null)
                {
                    if (write) RandomAccess.Write(handle, buffer, offset);
                    else if (RandomAccess.Read(handle, buffer, offset) != buffer.Length) throw new InvalidOperationException("short read");
                }
                else if (write) file!.Write(buffer, offset);
                else if (file!.Read(buffer, offset) != buffer.Length) throw new InvalidOperationException("short read");
            }
            return ops / sw.Elapsed.TotalSeconds;
        }
        finally { NativeMemory.AlignedFree(block); }
    }
}
