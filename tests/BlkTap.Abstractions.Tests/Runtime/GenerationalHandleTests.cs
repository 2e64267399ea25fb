using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Runtime;

public class GenerationalHandleTests
{
    [FsCheck.NUnit.Property]
    public bool Make_AnyGenerationAndSlot_SlotOfAndGenerationOfGiveThemBack(uint generation, NonNegativeInt slot)
    {
        ulong handle = GenerationalHandle.Make(generation, slot.Get);
        return GenerationalHandle.SlotOf(handle) == slot.Get && GenerationalHandle.GenerationOf(handle) == generation;
    }

    [Test]
    public void Make_SameSlotNextGeneration_DiffersFromTheOldHandle()
    {
        Assert.That(GenerationalHandle.Make(8, 3), Is.Not.EqualTo(GenerationalHandle.Make(7, 3)));
        Assert.That(GenerationalHandle.Make(7, 3), Is.EqualTo((7UL << 32) | 3), "generation high, slot low");
    }
}
