using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;

namespace BlkTap.Tests.Taps;

/// <summary>Starts an emulator rig whose dom0 tap is a chain of taps (frontend side first).</summary>
internal static class TapTestRig
{
    public static Task<RigScope> StartAsync(params ITap[] chain) => StartAsync(1, chain);

    public static async Task<RigScope> StartAsync(int frontends, params ITap[] chain) =>
        new(await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = frontends }, rt => TapChain.Register(rt, chain)));

    public static TapChain Build(TapContext? context, params string[] specs) =>
        ExampleTaps.CreateRegistry().Build(specs.Select(TapSpec.Parse).ToList(), context ?? new TapContext { Output = TextWriter.Null });

    /// <summary>Deterministic bytes for a write.</summary>
    public static byte[] Pattern(Random random, int sectors)
    {
        var b = new byte[sectors * 512];
        random.NextBytes(b);
        return b;
    }
}

/// <summary>An emulator rig for tap tests (disposes the rig).</summary>
internal sealed class RigScope(EmulatorRig rig) : IAsyncDisposable
{
    public EmulatorRig Rig { get; } = rig;
    public IReadOnlyList<BlkFront> Frontends => Rig.Frontends;

    public ValueTask DisposeAsync() => Rig.DisposeAsync();
}
