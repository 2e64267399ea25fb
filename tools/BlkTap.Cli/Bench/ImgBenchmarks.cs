using System.Diagnostics;
using BlkTap.Examples;
using Microsoft.Win32.SafeHandles;

namespace BlkTap.Cli.Bench;

/// <summary>
/// The <c>img</c> tap against plain positional I/O on the same page-cached file in /dev/shm: 4 KiB
/// random reads and writes, qd 32 (a full ring per loop pass), one thread each.
/// </summary>
internal static class ImgBenchmarks
{
    public static IEnumerable<BenchResult> Run(BenchContext ctx)
    {
        long bytes = ctx.Quick ? 16L << 20 : 256L << 20;
        int batches = ctx.Quick ? 200 : 20_000;
        ctx.Progress("img: creating the image in " + ctx.ScratchDirectory);
        var path = ctx.CreateImage("img.raw", bytes);
        var note = $"{bytes >> 20} MiB image in {ctx.ScratchDirectory} (page cache)";
        var tap = new ImgTap(path, readOnly: false);
        double ourRead, ourWrite;
        try
        {
            using var h = new RingHarness(rt => TapChain.Register(rt, [tap]));
            if (h.Sectors != (ulong)bytes / 512) throw new InvalidOperationException($"img sized the disk {h.Sectors} sectors, expected {bytes / 512}");
            ctx.Progress("img: tap random reads");
            (ourRead, _) = RuntimeBenchmarks.Measure(h, batches, BlkifOperation.Read);
            ctx.Progress("img: tap random writes");
            (ourWrite, _) = RuntimeBenchmarks.Measure(h, batches, BlkifOperation.Write);
        }
        finally { tap.Dispose(); }

        ctx.Progress("img: plain pread/pwrite baseline");
        double rawRead, rawWrite;
        using (var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
        {
            int ops = batches * 32;
            RawLoop(handle, bytes, Math.Max(320, ops / 10), write: false);
            rawRead = RawLoop(handle, bytes, ops, write: false);
            RawLoop(handle, bytes, Math.Max(320, ops / 10), write: true);
            rawWrite = RawLoop(handle, bytes, ops, write: true);
        }
        File.Delete(path);
        const string baseline = "RandomAccess.Read/Write loop, same file, same process; goal >= 0.8";
        yield return new BenchResult("img vs raw: 4 KiB random read, qd 32", ourRead, rawRead, "IOPS", baseline, Note: note);
        yield return new BenchResult("img vs raw: 4 KiB random write, qd 32", ourWrite, rawWrite, "IOPS", baseline, Note: note);
    }

    /// <summary>Plain positional I/O at the same random 4 KiB-aligned offsets the harness uses.</summary>
    private static double RawLoop(SafeFileHandle handle, long bytes, int ops, bool write)
    {
        var buffer = new byte[4096];
        ulong slots = (ulong)(bytes / 512 - 8) / 8;
        ulong rng = 12345UL;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < ops; i++)
        {
            rng = rng * 6364136223846793005UL + 1442695040888963407UL;
            long offset = (long)((rng >> 20) % slots * 8 * 512);
            if (write) RandomAccess.Write(handle, buffer, offset);
            else if (RandomAccess.Read(handle, buffer, offset) != buffer.Length) throw new InvalidOperationException("short read");
        }
        return ops / sw.Elapsed.TotalSeconds;
    }
}
