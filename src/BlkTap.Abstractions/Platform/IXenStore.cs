namespace BlkTap;

/// <summary>
/// A xenstore connection: the emulator's in-process store or the real one through libxenstore.
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread. Watch callbacks run on a thread the
/// implementation chooses (the emulator's scheduler, or a watch thread); they must not block.
/// Values are UTF-8 strings as the xenstore wire carries them. Paths are absolute.
/// </remarks>
public interface IXenStore
{
    /// <summary>Reads a node; null when it does not exist.</summary>
    string? Read(string path);

    /// <summary>Writes a node, creating its parents.</summary>
    void Write(string path, string value);

    /// <summary>Removes a node and its children; false when it did not exist.</summary>
    bool Remove(string path);

    /// <summary>Lists the children of a node (names, not paths); empty when it has none or does not exist.</summary>
    IReadOnlyList<string> Directory(string path);

    /// <summary>
    /// Watches a node and everything below it. The callback receives the path that changed; like Xen,
    /// it fires once right after the watch is set. Dispose the result to stop watching.
    /// </summary>
    IDisposable Watch(string path, Action<string> onChanged);
}
