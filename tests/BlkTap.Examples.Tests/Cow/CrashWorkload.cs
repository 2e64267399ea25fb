namespace BlkTap.Examples.Tests.Cow;

/// <summary>
/// The crash test's workload, shared (linked source) by the test and tests/BlkTap.CrashChild: run
/// <c>seed</c> does generations 1, 2, ...; generation g is a few sequential writes (positions and
/// data derived from seed and g only) followed by a FLUSH.
/// </summary>
internal static class CrashWorkload
{
    public const int DiskBytes = 2 << 20;

    public static List<(ulong Sector, byte[] Data)> Generation(int seed, int generation)
    {
        // NOTE: a stable seed mix: HashCode.Combine is randomised per process.
        var rng = new Random(unchecked(seed * 1_000_003 + generation * 7919 + 0x5eed));
        int writes = rng.Next(1, 9);
        var list = new List<(ulong, byte[])>(writes);
        for (int i = 0; i < writes; i++)
        {
            int count = rng.Next(1, 65);
            ulong at = (ulong)rng.Next(0, DiskBytes / 512 - count + 1);
            var data = new byte[count * 512];
            rng.NextBytes(data);
            list.Add((at, data));
        }
        return list;
    }
}
