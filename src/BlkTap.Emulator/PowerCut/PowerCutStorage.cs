using BlkTap.Emulator.PowerCut.Internal;
using BlkTap.Storage;

namespace BlkTap.Emulator.PowerCut;

/// <summary>
/// A simulated storage that records, per file, the durable content and every change since the last sync, and can be
/// cut: <see cref="Cut"/> (or an armed cut, <see cref="ArmCut"/>, at a given storage operation) turns the power off and
/// gives a new storage holding only what survives (<see cref="PowerCutVariant"/>). Storage taps open their files on it
/// through <see cref="Chains.TapContext.Storage"/>.
/// </summary>
/// <remarks>
/// <para>The model. Writes, length changes (<see cref="IStorageFile.SetLength"/>) and holes
/// (<see cref="IStorageFile.PunchHole"/>) of a file are durable once a later <see cref="IStorageFile.Flush"/> of that
/// file returns; before that each one may or may not survive a cut, independently of the others and in its order
/// (conservatively: a disk with a volatile cache may write back in any order; a write's sectors are atomic, a write is
/// not, see <see cref="PowerCutVariant.TornWrite"/>). Names (create, rename, delete) are durable once
/// <see cref="SyncDirectory"/> of their directory returns; a sync commits the name changes in order up to its
/// directory's last one (a journal), and at a cut a random prefix of the rest survives. A file's content and its name
/// are separate: a file created and synced but whose name was not synced is gone after a cut.</para>
/// <para>After the power is off every call (reads too) throws <see cref="IOException"/>, so nothing completes after a
/// cut that the cut did not see. <see cref="LyingFlushes"/> makes a storage that acknowledges syncs and keeps nothing:
/// a broken disk, for proving that a checker catches lost data.</para>
/// <para>Threading: every member is safe from any thread (one lock; aio writes from worker threads).</para>
/// </remarks>
public sealed partial class PowerCutStorage : IStorageProvider
{
    private readonly object _gate = new();
    private readonly HashSet<string> _directories;
    private readonly Dictionary<string, PowerCutInode> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PowerCutInode> _durableNames = new(StringComparer.Ordinal);
    private readonly List<NameChange> _pendingNames = new();
    private long _operations, _cutAt = long.MaxValue;
    private PowerCutVariant _armedVariant;
    private Random? _armedRandom;
    private PowerCutStorage? _afterCut;

    /// <summary>An empty storage with the given directories (absolute paths).</summary>
    public PowerCutStorage(params string[] directories)
    {
        _directories = new HashSet<string>(directories.Select(Normal), StringComparer.Ordinal);
    }

    /// <summary>Acknowledge syncs without making anything durable (a lying disk). Set before use.</summary>
    public bool LyingFlushes { get; init; }

    /// <summary>Storage operations so far (writes, syncs, length changes, holes, name changes; not reads).</summary>
    public long Operations { get { lock (_gate) return _operations; } }

    /// <summary>True once the power is off.</summary>
    public bool IsCut { get { lock (_gate) return _afterCut != null; } }

    /// <summary>What survived the cut (null before it).</summary>
    public PowerCutStorage? AfterCut { get { lock (_gate) return _afterCut; } }

    /// <summary>Adds a file whose name and <paramref name="content"/> are durable already (an image made before the run).</summary>
    public void AddDurableFile(string path, ReadOnlySpan<byte> content)
    {
        path = Normal(path);
        var inode = PowerCutInode.FromDurable(content);
        lock (_gate)
        {
            _names[path] = inode;
            _durableNames[path] = inode;
        }
    }

    /// <summary>The current content of a file (what a read sees now), or null when there is none by that name.</summary>
    public byte[]? ReadAll(string path)
    {
        lock (_gate) return _names.TryGetValue(Normal(path), out var i) ? i.Current.AsSpan(0, (int)i.CurrentLength).ToArray() : null;
    }

    /// <summary>
    /// Cuts the power when storage operation number <paramref name="operation"/> (counted from 1, as
    /// <see cref="Operations"/>) is attempted: that operation and every later one fail. <paramref name="random"/> draws
    /// what survives (used under the lock, on whichever thread hits the cut).
    /// </summary>
    public void ArmCut(long operation, PowerCutVariant variant, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        lock (_gate)
        {
            _cutAt = operation;
            _armedVariant = variant;
            _armedRandom = random;
            if (_operations >= operation && _afterCut == null) _afterCut = Survive(variant, random);
        }
    }

    /// <summary>Cuts the power now (or returns what the earlier cut left): a new storage holding what survived, all durable.</summary>
    public PowerCutStorage Cut(PowerCutVariant variant, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        lock (_gate) return _afterCut ??= Survive(variant, random);
    }

    /// <inheritdoc/>
    public bool FileExists(string path)
    {
        lock (_gate) { ThrowIfOff(); return _names.ContainsKey(Normal(path)); }
    }

    /// <inheritdoc/>
    public bool DirectoryExists(string path)
    {
        lock (_gate) { ThrowIfOff(); return _directories.Contains(Normal(path)); }
    }

    /// <inheritdoc/>
    public IStorageFile Open(string path, StorageOpenOptions options)
    {
        path = Normal(path);
        bool exclusive = (options & StorageOpenOptions.Exclusive) != 0;
        lock (_gate)
        {
            ThrowIfOff();
            if (!_names.TryGetValue(path, out var inode)) throw new FileNotFoundException($"could not find file '{path}'", path);
            Take(inode, path, exclusive);
            return new PowerCutFile(this, inode, path, (options & StorageOpenOptions.Writable) == 0, exclusive);
        }
    }

    /// <inheritdoc/>
    public IStorageFile Create(string path)
    {
        path = Normal(path);
        lock (_gate)
        {
            Tick();
            CheckDirectory(path);
            if (_names.TryGetValue(path, out var inode))
            {
                Take(inode, path, exclusive: true);
                inode.Change(new PendingChange(PendingKind.SetLength, 0, 0, null)); // FileMode.Create truncates
            }
            else
            {
                inode = new PowerCutInode();
                Take(inode, path, exclusive: true);
                _names[path] = inode;
                _pendingNames.Add(new NameChange(NameChangeKind.Create, path, null, inode));
            }
            return new PowerCutFile(this, inode, path, readOnly: false, exclusive: true);
        }
    }

    /// <inheritdoc/>
    public void Move(string from, string to)
    {
        from = Normal(from);
        to = Normal(to);
        lock (_gate)
        {
            Tick();
            CheckDirectory(to);
            if (!_names.TryGetValue(from, out var inode)) throw new FileNotFoundException($"could not find file '{from}'", from);
            if (_names.ContainsKey(to)) throw new IOException($"the file '{to}' already exists");
            _names.Remove(from);
            _names[to] = inode;
            _pendingNames.Add(new NameChange(NameChangeKind.Move, from, to, inode));
        }
    }

    /// <inheritdoc/>
    public void Delete(string path)
    {
        path = Normal(path);
        lock (_gate)
        {
            Tick();
            if (_names.Remove(path, out var inode)) _pendingNames.Add(new NameChange(NameChangeKind.Delete, path, null, inode));
        }
    }

    /// <inheritdoc/>
    public void SyncDirectory(string directory)
    {
        directory = Normal(directory);
        lock (_gate)
        {
            Tick();
            if (!_directories.Contains(directory)) throw new DirectoryNotFoundException($"could not find directory '{directory}'");
            if (LyingFlushes) return;
            int last = _pendingNames.FindLastIndex(c => c.Touches(directory));
            for (int i = 0; i <= last; i++) _pendingNames[i].ApplyTo(_durableNames);
            _pendingNames.RemoveRange(0, last + 1);
        }
    }

    // The file side, called by PowerCutFile.

    internal long LengthOf(PowerCutInode inode, PowerCutFile file)
    {
        lock (_gate) { ThrowIfOff(file); return inode.CurrentLength; }
    }

    internal int Read(PowerCutInode inode, PowerCutFile file, Span<byte> buffer, long offset)
    {
        lock (_gate)
        {
            ThrowIfOff(file);
            if (offset >= inode.CurrentLength) return 0;
            int n = (int)Math.Min(buffer.Length, inode.CurrentLength - offset);
            inode.Current.AsSpan((int)offset, n).CopyTo(buffer);
            return n;
        }
    }

    internal void Change(PowerCutInode inode, PowerCutFile file, in PendingChange change)
    {
        lock (_gate)
        {
            ThrowIfOff(file);
            Tick();
            inode.Change(change);
        }
    }

    internal void Sync(PowerCutInode inode, PowerCutFile file)
    {
        lock (_gate)
        {
            ThrowIfOff(file);
            Tick();
            if (!LyingFlushes) inode.Sync();
        }
    }

    internal void Close(PowerCutInode inode, bool exclusive)
    {
        lock (_gate)
        {
            inode.Opens--;
            if (exclusive) inode.ExclusivelyOpen = false;
        }
    }

    private void Take(PowerCutInode inode, string path, bool exclusive)
    {
        if (inode.ExclusivelyOpen || (exclusive && inode.Opens > 0)) throw new IOException($"the file '{path}' is locked by another opener");
        inode.Opens++;
        if (exclusive) inode.ExclusivelyOpen = true;
    }

    private void CheckDirectory(string path)
    {
        var dir = Path.GetDirectoryName(path);
        if (dir == null || !_directories.Contains(dir)) throw new DirectoryNotFoundException($"could not find a part of the path '{path}'");
    }

    /// <summary>Counts one storage operation; cuts the power when the armed cut is due. Under the lock.</summary>
    private void Tick()
    {
        ThrowIfOff();
        if (++_operations >= _cutAt)
        {
            _afterCut = Survive(_armedVariant, _armedRandom!);
            ThrowIfOff();
        }
    }

    private void ThrowIfOff(PowerCutFile? file = null)
    {
        if (_afterCut != null) throw new IOException("power cut: the storage is off");
        if (file != null && file.IsDisposed) throw new ObjectDisposedException(file.Path);
    }

    private static string Normal(string path) => Path.GetFullPath(path).TrimEnd('/') is { Length: > 0 } p ? p : "/";
}
