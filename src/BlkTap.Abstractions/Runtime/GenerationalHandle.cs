namespace BlkTap;

/// <summary>
/// A 64-bit handle to a slot of a table whose slots are reused: the slot's index in the low 32 bits and a
/// generation in the high 32 bits that changes each time the slot is taken (a count per slot or one for the whole
/// table; it wraps after 2^32). A handle kept after its slot was freed and taken again (a late readiness report, a
/// reply carrying an old cookie) no longer matches the handle the slot holds now, so the table can recognise it as
/// stale. The runtime's descriptor registrations use it for their tokens.
/// </summary>
/// <remarks>
/// Threading: pure functions of their arguments, safe from any thread. The table that hands out the handles keeps
/// the generations and decides its own threading rules.
/// </remarks>
public static class GenerationalHandle
{
    /// <summary>The handle of slot <paramref name="slot"/> (0 or more) taken for the <paramref name="generation"/>th time.</summary>
    public static ulong Make(uint generation, int slot) => ((ulong)generation << 32) | (uint)slot;

    /// <summary>The slot index a handle names (its low 32 bits).</summary>
    public static int SlotOf(ulong handle) => (int)(uint)handle;

    /// <summary>The generation a handle carries (its high 32 bits).</summary>
    public static uint GenerationOf(ulong handle) => (uint)(handle >> 32);
}
