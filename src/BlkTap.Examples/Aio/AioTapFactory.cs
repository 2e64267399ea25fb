using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// <c>aio</c>: an asynchronous raw-file terminator (a TODO of the 2005 Xen blktap, whose libaio attempt was
/// "tragically stalled": Xen's <c>tools/blktap/README</c>): every request is stolen and its file I/O runs
/// concurrently off the loop, up to <c>depth</c> at once.
/// </summary>
public sealed class AioTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "aio";
    /// <inheritdoc/>
    public string Description => "raw image file served with concurrent I/O off the loop (asynchronous blkimg)";
    /// <inheritdoc/>
    public bool IsTerminator => true;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("path", "image file; without it each session's image identifier (params) is the path"),
        new("depth", "most operations in flight at once (default 64)"),
        new("readonly", "answer writes with ERROR (default false)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var path = spec.Get("path");
        var storage = TapStorage.Of(context);
        if (path != null && !storage.FileExists(path)) throw new ChainSpecException($"tap 'aio': image file '{path}' does not exist");
        long depth = spec.GetInt64("depth", 64);
        if (depth is < 1 or > 4096) throw new ChainSpecException($"tap 'aio': depth={depth} must be between 1 and 4096");
        return new AioTap(path, (int)depth, spec.GetBool("readonly", false), storage);
    }
}
