// Usage: BlkTap.CrashChild OVERLAY BASE SEED
// Runs an emulated guest writing through `cow:overlay=OVERLAY` over `img:path=BASE`: generation after
// generation of CrashWorkload writes, each followed by a FLUSH; prints "ready" once connected and
// "flushed G" after generation G's flush has completed. Runs until killed.
using BlkTap;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Tests.Cow;

if (args.Length != 3 || !int.TryParse(args[2], out int seed))
{
    Console.Error.WriteLine("usage: BlkTap.CrashChild OVERLAY BASE SEED");
    return 2;
}
var taps = ExampleTaps.CreateRegistry().Build([TapSpec.Parse($"cow:overlay={args[0]}"), TapSpec.Parse($"img:path={args[1]}")], new TapContext());
await using var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = 1, Seed = seed }, runtime => TapChain.Register(runtime, taps));
var front = rig.Frontends[0];
Console.Out.WriteLine("ready");
for (int g = 1; ; g++)
{
    foreach (var (sector, data) in CrashWorkload.Generation(seed, g))
    {
        var s = await front.WriteAsync(sector, data);
        if (s != BlkifStatus.Okay) { Console.Error.WriteLine($"write failed: {s}"); return 1; }
    }
    var f = await front.FlushAsync();
    if (f != BlkifStatus.Okay) { Console.Error.WriteLine($"flush failed: {f}"); return 1; }
    Console.Out.WriteLine($"flushed {g}");
}
