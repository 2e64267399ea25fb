using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

/// <summary>
/// The emulator's xenstore, shared by all its domains: a tree of string nodes with watches.
/// Permissions and transactions are not emulated.
/// </summary>
/// <remarks>
/// Threading: every member is safe to call from any thread. Watch callbacks never run on the writer's
/// stack: they are posted to the emulator's scheduler, one event per callback, in order per watch.
/// NOTE: watch semantics follow xenstored (tools/xenstored/watch.c): a change to a path fires every
/// watch on that path or an ancestor, with the changed path; removing a node also fires watches set
/// below it, each with its own watched path; every new watch fires once right away with its own path.
/// Writing a value equal to the old one still fires. Parents created by a write get the empty value.
/// </remarks>
public sealed class EmulatedXenStore : IXenStore
{
    private readonly EmulatorScheduler _scheduler;
    private readonly XenStoreNode _root = new();
    private readonly List<XenStoreWatch> _watches = new();

    internal EmulatedXenStore(EmulatorScheduler scheduler) => _scheduler = scheduler;

    internal object Gate { get; } = new();

    /// <summary>Number of writes and removes so far (diagnostics).</summary>
    public long ChangeCount { get; private set; }

    /// <summary>Number of live watches.</summary>
    public int WatchCount
    {
        get { lock (Gate) return _watches.Count; }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The path is not a valid xenstore path.</exception>
    public string? Read(string path)
    {
        XenStorePath.Validate(path, nameof(path));
        lock (Gate) return Find(path)?.Value;
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The path is not a valid xenstore path.</exception>
    public void Write(string path, string value)
    {
        XenStorePath.Validate(path, nameof(path));
        ArgumentNullException.ThrowIfNull(value);
        if (path == "/") throw new ArgumentException("the root node cannot be written", nameof(path));
        lock (Gate)
        {
            var node = _root;
            int start = 1;
            while (start <= path.Length)
            {
                int end = path.IndexOf('/', start);
                if (end < 0) end = path.Length;
                var name = path[start..end];
                if (!node.Children.TryGetValue(name, out var child))
                {
                    child = new XenStoreNode();
                    node.Children.Add(name, child);
                }
                node = child;
                start = end + 1;
            }
            node.Value = value;
            ChangeCount++;
            FireLocked(path, removal: false);
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The path is not a valid xenstore path, or is the root.</exception>
    public bool Remove(string path)
    {
        XenStorePath.Validate(path, nameof(path));
        if (path == "/") throw new ArgumentException("the root node cannot be removed", nameof(path));
        lock (Gate)
        {
            var parent = Find(XenStorePath.Parent(path));
            if (parent == null || !parent.Children.Remove(XenStorePath.Name(path))) return false;
            ChangeCount++;
            FireLocked(path, removal: true);
            return true;
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The path is not a valid xenstore path.</exception>
    public IReadOnlyList<string> Directory(string path)
    {
        XenStorePath.Validate(path, nameof(path));
        lock (Gate)
        {
            var node = Find(path);
            if (node == null || node.Children.Count == 0) return Array.Empty<string>();
            var names = new string[node.Children.Count];
            node.Children.Keys.CopyTo(names, 0);
            return names;
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Besides ordinary paths, <c>@introduceDomain</c> and <c>@releaseDomain</c> may be watched: they
    /// fire when the emulator creates or destroys a domain.
    /// </remarks>
    /// <exception cref="ArgumentException">The path is not a valid xenstore path.</exception>
    public IDisposable Watch(string path, Action<string> onChanged)
    {
        if (!XenStorePath.IsSpecial(path)) XenStorePath.Validate(path, nameof(path));
        ArgumentNullException.ThrowIfNull(onChanged);
        var watch = new XenStoreWatch(this, _scheduler, path, onChanged);
        lock (Gate)
        {
            _watches.Add(watch);
            watch.FireLocked(path); // NOTE: xenstored fires every new watch once (docs/misc/xenstore.txt, WATCH)
        }
        return watch;
    }

    internal void RemoveWatch(XenStoreWatch watch)
    {
        lock (Gate) _watches.Remove(watch);
    }

    /// <summary>Fires the special watch <paramref name="special"/> (domain introduced or released).</summary>
    internal void FireSpecial(string special)
    {
        lock (Gate)
        {
            foreach (var w in _watches)
                if (w.Path == special) w.FireLocked(special);
        }
    }

    private void FireLocked(string path, bool removal)
    {
        foreach (var w in _watches)
        {
            if (XenStorePath.IsSpecial(w.Path)) continue;
            if (XenStorePath.IsAtOrBelow(path, w.Path)) w.FireLocked(path);
            else if (removal && XenStorePath.IsAtOrBelow(w.Path, path)) w.FireLocked(w.Path);
        }
    }

    private XenStoreNode? Find(string path)
    {
        if (path == "/") return _root;
        var node = _root;
        int start = 1;
        while (start <= path.Length)
        {
            int end = path.IndexOf('/', start);
            if (end < 0) end = path.Length;
            if (!node.Children.TryGetValue(path[start..end], out var child)) return null;
            node = child;
            start = end + 1;
        }
        return node;
    }
}
