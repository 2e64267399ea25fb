namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>What a name change did.</summary>
internal enum NameChangeKind : byte { Create, Move, Delete }

/// <summary>A create, rename or delete not yet made durable by a directory sync. Immutable.</summary>
internal readonly record struct NameChange(NameChangeKind Kind, string Path, string? To, PowerCutInode Inode)
{
    /// <summary>True when the change names an entry of <paramref name="directory"/>.</summary>
    public bool Touches(string directory) =>
        System.IO.Path.GetDirectoryName(Path) == directory || (To != null && System.IO.Path.GetDirectoryName(To) == directory);

    /// <summary>Applies the change to a name table.</summary>
    public void ApplyTo(Dictionary<string, PowerCutInode> names)
    {
        switch (Kind)
        {
            case NameChangeKind.Create: names[Path] = Inode; break;
            case NameChangeKind.Move:
                if (names.Remove(Path, out var inode)) names[To!] = inode;
                break;
            case NameChangeKind.Delete: names.Remove(Path); break;
        }
    }
}
