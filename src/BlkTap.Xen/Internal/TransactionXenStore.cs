namespace BlkTap.Xen.Internal;

/// <summary>
/// An <see cref="IXenStore"/> view of one <see cref="XenStoreTransaction"/>, so toolstack writers that take an
/// IXenStore run inside a transaction. Valid only inside the transaction body, on its thread. Watches are not
/// transactional in xenstore and are refused.
/// </summary>
internal sealed class TransactionXenStore(XenStoreTransaction transaction) : IXenStore
{
    public string? Read(string path) => transaction.Read(path);

    public void Write(string path, string value) => transaction.Write(path, value);

    public bool Remove(string path) => transaction.Remove(path);

    public IReadOnlyList<string> Directory(string path) => transaction.Directory(path);

    public IDisposable Watch(string path, Action<string> onChanged) =>
        throw new NotSupportedException("xenstore watches cannot be set inside a transaction");
}
