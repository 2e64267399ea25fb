using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

/// <summary>
/// Concurrent reads and writes of one frontend checked against a byte-array model: each worker owns a stripe of the
/// disk (so concurrent requests never overlap and the model is exact), writes random bytes of random lengths, reads
/// back random ranges, and at the end the whole disk is read and compared.
/// </summary>
internal static class ModelWorkload
{
    public static async Task RunAsync(BlkFront front, long diskBytes, int seed, int operations, int workers)
    {
        var model = new byte[diskBytes];
        var initial = new byte[diskBytes];
        Assert.That(await front.ReadAsync(0, initial), Is.EqualTo(BlkifStatus.Okay), "initial read");
        initial.CopyTo(model, 0);
        long stripe = diskBytes / workers / BlkifConstants.SectorSize * BlkifConstants.SectorSize;
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Worker(front, model, w * stripe, stripe, seed * 1000 + w, operations)));
        var back = new byte[diskBytes];
        Assert.That(await front.ReadAsync(0, back), Is.EqualTo(BlkifStatus.Okay), "final read");
        Assert.That(back.AsSpan().SequenceEqual(model), Is.True, $"{front.FrontendPath}: the disk differs from the model");
    }

    private static async Task Worker(BlkFront front, byte[] model, long start, long length, int seed, int operations)
    {
        var random = new Random(seed);
        long sectors = length / BlkifConstants.SectorSize;
        for (int i = 0; i < operations; i++)
        {
            int count = 1 + random.Next((int)Math.Min(40, sectors));
            long first = random.NextInt64(sectors - count + 1);
            long offset = start + first * BlkifConstants.SectorSize;
            int bytes = count * BlkifConstants.SectorSize;
            ulong sector = (ulong)(offset / BlkifConstants.SectorSize);
            if (random.Next(2) == 0)
            {
                var data = new byte[bytes];
                random.NextBytes(data);
                Assert.That(await front.WriteAsync(sector, data), Is.EqualTo(BlkifStatus.Okay), $"write of {count} at {sector}");
                data.CopyTo(model, offset);
            }
            else
            {
                var data = new byte[bytes];
                Assert.That(await front.ReadAsync(sector, data), Is.EqualTo(BlkifStatus.Okay), $"read of {count} at {sector}");
                Assert.That(data.AsSpan().SequenceEqual(model.AsSpan((int)offset, bytes)), Is.True, $"{front.FrontendPath}: read of {count} at {sector} differs from the model");
            }
        }
    }
}
