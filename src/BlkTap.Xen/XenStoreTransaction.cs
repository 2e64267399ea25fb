namespace BlkTap.Xen;

/// <summary>
/// A xenstore transaction handed to the body of <see cref="XenStore.Transact{T}"/>: every operation sees one
/// snapshot, and all writes become visible at once when the body returns. Valid only inside that body and only
/// on the thread running it.
/// </summary>
public sealed class XenStoreTransaction
{
    private readonly XenStore _store;
    private readonly uint _id;

    internal XenStoreTransaction(XenStore store, uint id)
    {
        _store = store;
        _id = id;
    }

    /// <summary>Reads a node in the transaction; null when it does not exist.</summary>
    public string? Read(string path) => _store.ReadCore(_id, path);

    /// <summary>Writes a node in the transaction, creating its parents.</summary>
    public void Write(string path, string value) => _store.WriteCore(_id, path, value);

    /// <summary>Removes a node and its children; false when it did not exist.</summary>
    public bool Remove(string path) => _store.RemoveCore(_id, path);

    /// <summary>Lists the children of a node; empty when it has none or does not exist.</summary>
    public IReadOnlyList<string> Directory(string path) => _store.DirectoryCore(_id, path);

    /// <summary>Sets a node's permission list (see <see cref="XenStore.SetPermissions"/>).</summary>
    public void SetPermissions(string path, params ReadOnlySpan<XenStorePermission> permissions) =>
        _store.SetPermissionsCore(_id, path, permissions);
}
