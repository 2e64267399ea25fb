using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// <c>cow</c>: a persistent, crash-safe copy-on-write overlay in front of any lower layer (blkcow of
/// the 2005 Xen blktap, Xen's <c>tools/blktap/README</c>, without its libdb). Writes go to the overlay
/// file; reads come from the overlay, the layer below, or both merged.
/// </summary>
public sealed class CowTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "cow";
    /// <inheritdoc/>
    public string Description => "copy-on-write overlay file over the layer below (crash-safe; see docs/cow-format.md)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("overlay", "overlay file; created (sized to the base) at the first attach if missing", Required: true),
        new("cluster", "map cluster size of a new overlay: 4K or 64K (default 64K)"),
        new("readonly-base", "true (default): the disk is writable even over a read-only base, nothing but reads reach the base; false: the disk is read-only when the layer below is"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var overlay = spec.Require("overlay");
        long cluster = spec.GetSize("cluster", 64 * 1024);
        if (cluster is not (4096 or 65536)) throw new ChainSpecException($"tap 'cow': cluster={spec.Get("cluster")} must be 4K or 64K");
        var storage = TapStorage.Of(context);
        var dir = Path.GetDirectoryName(Path.GetFullPath(overlay));
        if (dir != null && !storage.DirectoryExists(dir)) throw new ChainSpecException($"tap 'cow': the directory of overlay '{overlay}' does not exist");
        if (storage.FileExists(overlay))
        {
            // Check the file now, so a corrupt overlay is a clear usage error rather than failing disks.
            try { CowOverlay.Open(overlay, storage).Dispose(); }
            catch (CowFormatException ex) { throw new ChainSpecException($"tap 'cow': {ex.Message}"); }
        }
        return new CowTap(overlay, (int)cluster, spec.GetBool("readonly-base", true), storage);
    }
}
