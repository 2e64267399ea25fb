namespace BlkTap.Emulator.Internal;

/// <summary>One successful Map: which entries it holds, so Unmap can release them.</summary>
internal sealed class GrantMapping
{
    public GrantMapping(ushort mapper, EmulatedDomain granter, GrantEntry[] entries)
    {
        Mapper = mapper;
        Granter = granter;
        Entries = entries;
    }

    public ushort Mapper { get; }
    public EmulatedDomain Granter { get; }
    public GrantEntry[] Entries { get; }
}
