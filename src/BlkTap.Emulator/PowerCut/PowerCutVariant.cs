namespace BlkTap.Emulator.PowerCut;

/// <summary>What survives a power cut of a <see cref="PowerCutStorage"/>.</summary>
public enum PowerCutVariant
{
    /// <summary>Only what was synced: every write, length change, hole and name change since the last sync is lost.</summary>
    SyncedOnly,
    /// <summary>What was synced, and an independent random half of the changes since (applied in their order).</summary>
    RandomSubset,
    /// <summary>As <see cref="RandomSubset"/>, and one unsynced write is torn: each of its 512-byte sectors lands or not.</summary>
    TornWrite,
}
