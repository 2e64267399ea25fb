using BlkTap.Emulator.PowerCut.Internal;

namespace BlkTap.Emulator.PowerCut;

public sealed partial class PowerCutStorage
{
    // The cut: from the durable state and the changes since, what the disk holds when the power comes back.

    /// <summary>Writes torn by cuts of this storage (0 or 1).</summary>
    public int TornWrites { get; private set; }

    /// <summary>Under the lock: a new storage holding what survives a cut now.</summary>
    private PowerCutStorage Survive(PowerCutVariant variant, Random random)
    {
        var after = new PowerCutStorage([.. _directories]);
        var names = new Dictionary<string, PowerCutInode>(_durableNames, StringComparer.Ordinal);
        if (variant != PowerCutVariant.SyncedOnly)
        {
            int keep = random.Next(_pendingNames.Count + 1);
            for (int i = 0; i < keep; i++) _pendingNames[i].ApplyTo(names);
        }
        var ordered = names.OrderBy(n => n.Key, StringComparer.Ordinal).ToList();
        // The torn write: one pending write (of more than a sector) of a file that survives by name.
        PowerCutInode? tornInode = null;
        int tornIndex = -1;
        if (variant == PowerCutVariant.TornWrite)
        {
            var writes = new List<(PowerCutInode Inode, int Index)>();
            foreach (var inode in ordered.Select(n => n.Value).Distinct())
                for (int i = 0; i < inode.Pending.Count; i++)
                    if (inode.Pending[i].Kind == PendingKind.Write && inode.Pending[i].Length > PowerCutInode.Sector) writes.Add((inode, i));
            if (writes.Count > 0)
            {
                (tornInode, tornIndex) = writes[random.Next(writes.Count)];
                TornWrites++;
            }
        }
        var survivors = new Dictionary<PowerCutInode, PowerCutInode>();
        foreach (var (path, inode) in ordered)
        {
            if (!survivors.TryGetValue(inode, out var survivor))
            {
                survivor = variant == PowerCutVariant.SyncedOnly
                    ? inode.Survivor(_ => false, -1, random)
                    : inode.Survivor(_ => random.Next(2) == 0, ReferenceEquals(inode, tornInode) ? tornIndex : -1, random);
                survivors[inode] = survivor;
            }
            after._names[path] = survivor;
            after._durableNames[path] = survivor;
        }
        return after;
    }
}
