using BlkTap.Storage;

namespace BlkTap.Emulator.PowerCut;

/// <summary>
/// A chain the power-cut simulation cuts besides its built-in ones (<see cref="PowerCutOptions.ExtraChains"/>): for
/// taps whose files this project cannot make (a qcow2 image needs <c>BlkTap.Examples</c>), the caller says how to make
/// them and how to check them after a cut.
/// </summary>
/// <param name="Name">The chain's name in reports and in <see cref="PowerCutOptions.Chains"/>.</param>
/// <param name="Taps">Tap specs, frontend side first; files live in <see cref="PowerCutSimulation.Directory"/>.</param>
/// <remarks>Threading: the delegates run on the simulation's thread, one cut at a time.</remarks>
public sealed record PowerCutChain(string Name, IReadOnlyList<string> Taps)
{
    /// <summary>
    /// Makes the chain's files on the fresh storage before the cut is armed; the stamped disk
    /// (<c>disk.raw</c> in <see cref="PowerCutSimulation.Directory"/>) is there already. What it leaves must be durable
    /// (synced) and read as the disk does; null: nothing to make.
    /// </summary>
    public Action<IStorageProvider>? Prepare { get; init; }

    /// <summary>Checks the files on what survived a cut, after every sector was read back; each string is a violation.</summary>
    public Func<IStorageProvider, IEnumerable<string>>? Check { get; init; }
}
