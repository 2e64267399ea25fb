namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>A change to a file not yet made durable by a sync.</summary>
internal enum PendingKind : byte { Write, SetLength, PunchHole }

/// <summary>One change since the file's last sync: a write (with its data), a length change or a hole.</summary>
internal readonly record struct PendingChange(PendingKind Kind, long Offset, long Length, byte[]? Data);

/// <summary>
/// One simulated file (an inode: names point at it): its durable content, its current content (what reads see) and
/// the changes since the last sync, in order. Threading: guarded by its <see cref="PowerCutStorage"/>'s lock.
/// </summary>
internal sealed class PowerCutInode
{
    public const int Sector = 512;

    public byte[] Durable = [];
    public long DurableLength;
    public byte[] Current = [];
    public long CurrentLength;
    public readonly List<PendingChange> Pending = new();
    public int Opens;
    public bool ExclusivelyOpen;

    /// <summary>A file whose content is durable from the start.</summary>
    public static PowerCutInode FromDurable(ReadOnlySpan<byte> content)
    {
        var i = new PowerCutInode { Durable = content.ToArray(), DurableLength = content.Length };
        i.Current = (byte[])i.Durable.Clone();
        i.CurrentLength = content.Length;
        return i;
    }

    /// <summary>Records and applies a change to the current content.</summary>
    public void Change(in PendingChange change)
    {
        Pending.Add(change);
        Apply(ref Current, ref CurrentLength, change, null);
    }

    /// <summary>A sync: every pending change becomes durable.</summary>
    public void Sync()
    {
        foreach (var c in Pending) Apply(ref Durable, ref DurableLength, c, null);
        Pending.Clear();
    }

    /// <summary>
    /// Applies <paramref name="change"/> to <paramref name="content"/>. <paramref name="landed"/>, for a torn write,
    /// says which of its 512-byte sectors (counted from the write's start) land; null: all of it.
    /// </summary>
    public static void Apply(ref byte[] content, ref long length, in PendingChange change, Func<int, bool>? landed)
    {
        switch (change.Kind)
        {
            case PendingKind.Write:
                var data = change.Data!;
                if (landed == null)
                {
                    Place(ref content, ref length, change.Offset, data);
                    break;
                }
                for (int at = 0, sector = 0; at < data.Length; at += Sector, sector++)
                    if (landed(sector)) Place(ref content, ref length, change.Offset + at, data.AsSpan(at, Math.Min(Sector, data.Length - at)));
                break;
            case PendingKind.SetLength:
                // What lies past a shrink must read as zeroes when the file grows again.
                if (change.Length < length) content.AsSpan((int)change.Length, (int)(length - change.Length)).Clear();
                Grow(ref content, change.Length);
                length = change.Length;
                break;
            case PendingKind.PunchHole:
                long end = Math.Min(change.Offset + change.Length, length);
                if (end > change.Offset) content.AsSpan((int)change.Offset, (int)(end - change.Offset)).Clear();
                break;
        }
    }

    private static void Place(ref byte[] content, ref long length, long offset, ReadOnlySpan<byte> data)
    {
        long end = offset + data.Length;
        Grow(ref content, end);
        data.CopyTo(content.AsSpan((int)offset));
        if (end > length) length = end;
    }

    private static void Grow(ref byte[] content, long length)
    {
        if (length <= content.Length) return;
        if (length > Array.MaxLength) throw new IOException($"simulated file of {length} bytes is too large");
        var bigger = new byte[Math.Max(length, Math.Min(Array.MaxLength, (long)content.Length * 2))];
        content.CopyTo(bigger, 0);
        content = bigger;
    }

    /// <summary>The content after a power cut: durable, plus the pending changes <paramref name="survives"/> keeps (in order).</summary>
    public PowerCutInode Survivor(Func<int, bool> survives, int tornIndex, Random random)
    {
        byte[] content = (byte[])Durable.Clone();
        long length = DurableLength;
        for (int i = 0; i < Pending.Count; i++)
        {
            if (i == tornIndex) Apply(ref content, ref length, Pending[i], _ => random.Next(2) == 0);
            else if (survives(i)) Apply(ref content, ref length, Pending[i], null);
        }
        var after = new PowerCutInode { Durable = content, DurableLength = length, CurrentLength = length };
        after.Current = (byte[])content.Clone();
        return after;
    }
}
