namespace BlkTap.Xen.Tests.Advisories;

/// <summary>
/// The backend's xenstore connection with a counter in front of its watch callbacks: how many watch events reached
/// the backend, and a hook that sees each changed path first (so a test knows when a sentinel write's event has
/// been delivered, i.e. every event before it on that connection too).
/// </summary>
/// <remarks>Threading: <see cref="Events"/> and <see cref="Seen"/> are called on the store's watch thread.</remarks>
internal sealed class CountingXenStore(IXenStore inner) : IXenStore
{
    private long _events;

    /// <summary>Watch events delivered to the backend so far.</summary>
    public long Events => Interlocked.Read(ref _events);

    /// <summary>Runs on each event before the backend's callback, with the changed path.</summary>
    public Action<string>? Seen { get; set; }

    public string? Read(string path) => inner.Read(path);
    public void Write(string path, string value) => inner.Write(path, value);
    public bool Remove(string path) => inner.Remove(path);
    public IReadOnlyList<string> Directory(string path) => inner.Directory(path);

    public IDisposable Watch(string path, Action<string> onChanged) => inner.Watch(path, changed =>
    {
        Interlocked.Increment(ref _events);
        Seen?.Invoke(changed);
        onChanged(changed);
    });
}
