using BlkTap.Emulator.PowerCut;
using BlkTap.Examples.Qcow2;
using BlkTap.Storage;

namespace BlkTap.Cli.Commands;

/// <summary>
/// The qcow2 chains <c>blktap fuzz --power-cuts</c> cuts besides img, aio and cow: a qcow2 image with 4 KiB clusters
/// over the stamped raw disk, and one with 512-byte clusters over a qcow2 image (4 KiB clusters, half the disk copied
/// in) over the raw disk. After each cut, besides every sector, <see cref="Qcow2Checker"/> must find no error in the
/// top image (leaked clusters are allowed: a cut between an allocation and its use leaves them).
/// </summary>
/// <remarks>Threading: stateless; the delegates run on the simulation's thread.</remarks>
public static class Qcow2PowerCutChains
{
    private static string At(string name) => $"{PowerCutSimulation.Directory}/{name}";

    /// <summary>"qcow2" and "qcow2+qcow2".</summary>
    public static IReadOnlyList<PowerCutChain> All { get; } =
    [
        new("qcow2", [$"qcow2:path={At("top.qcow2")}"])
        {
            Prepare = storage => Qcow2Creator.Create(At("top.qcow2"), null, 4096, "disk.raw", "raw", storage),
            Check = storage => Check(storage, At("top.qcow2")),
        },
        new("qcow2+qcow2", [$"qcow2:path={At("top.qcow2")}"])
        {
            Prepare = storage =>
            {
                Qcow2Creator.Create(At("mid.qcow2"), null, 4096, "disk.raw", "raw", storage);
                using (var mid = Qcow2Image.Open(At("mid.qcow2"), writable: true, storage))
                using (var disk = storage.Open(At("disk.raw"), StorageOpenOptions.None))
                {
                    var half = new byte[disk.Length / 2];
                    disk.ReadFully(half, 0);
                    mid.WriteAt(0, half);
                } // disposing flushes: mid's data and metadata are durable
                Qcow2Creator.Create(At("top.qcow2"), null, 512, "mid.qcow2", "qcow2", storage);
            },
            Check = storage => Check(storage, At("top.qcow2")),
        },
    ];

    private static IEnumerable<string> Check(IStorageProvider storage, string path)
    {
        Qcow2CheckResult result;
        try { result = Qcow2Checker.Check(path, storage); }
        catch (Qcow2FormatException ex) { return [ex.Message]; }
        return result.Errors.Take(3);
    }
}
