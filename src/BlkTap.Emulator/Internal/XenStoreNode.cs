namespace BlkTap.Emulator.Internal;

/// <summary>A node of the emulated xenstore tree: a value and named children (kept sorted, so listings are deterministic).</summary>
/// <remarks>Threading: guarded by the store's lock.</remarks>
internal sealed class XenStoreNode
{
    public string Value { get; set; } = "";

    public SortedDictionary<string, XenStoreNode> Children { get; } = new(StringComparer.Ordinal);
}
