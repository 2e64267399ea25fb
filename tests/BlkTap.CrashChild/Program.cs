// Usage: BlkTap.CrashChild OVERLAY BASE SEED
//    or: BlkTap.CrashChild write-readonly-grant protected|unprotected
// Runs an emulated guest writing through `cow:overlay=OVERLAY` over `img:path=BASE`: generation after
// generation of CrashWorkload writes, each followed by a FLUSH; prints "ready" once connected and
// "flushed G" after generation G's flush has completed. Runs until killed.
using BlkTap;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Examples.Tests.Cow;

if (args.Length == 2 && args[0] == "write-readonly-grant") return WriteReadOnlyGrant(args[1] == "protected");
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

// A backend that writes into a page granted read-only: prints "mapped", writes one byte through the mapping, prints
// "wrote". With the emulator's write protection the write faults (SIGSEGV, a fatal AccessViolationException), as it
// does through gntdev on real Xen.
static unsafe int WriteReadOnlyGrant(bool protect)
{
    using var emu = new XenEmulator(new XenEmulatorOptions { Mode = SchedulerMode.Deterministic, ProtectReadOnlyGrants = protect });
    var guest = emu.CreateDomain("guest");
    nint page = guest.AllocatePages();
    guest.GetPage(page)[7] = 0x5A;
    uint gref = guest.Grants.GrantAccess(0, page, readOnly: true);
    var pages = new nint[1];
    if (emu.GrantMapperFor(0).Map(guest.Id, [gref], writable: false, pages, out _) != GrantStatus.Okay) return 3;
    Console.Out.WriteLine($"mapped {((byte*)pages[0])[7]:x2}");
    Console.Out.Flush();
    ((byte*)pages[0])[7] = 0xA5;
    Console.Out.WriteLine("wrote");
    return 0;
}
