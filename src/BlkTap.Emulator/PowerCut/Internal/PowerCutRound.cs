using System.Runtime.InteropServices;
using BlkTap.Chains;

namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>
/// One cut: a fresh storage with a stamped image, the chain over it, the workload until the armed cut fires (or to its
/// end, then a cut with requests still in flight), the chain reopened on what survived and every sector checked
/// against the <see cref="SectorModel"/>. Threading: one thread.
/// </summary>
internal sealed class PowerCutRound
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    // Buffers of runs whose requests never came back: a worker may still write into them, so they must stay alive.
    private static readonly List<byte[]> Abandoned = new();

    private readonly PowerCutOptions _options;
    private readonly int _seed;
    private readonly List<string> _problems = new();
    private long _violations, _lost;

    public PowerCutRound(PowerCutOptions options, int seed)
    {
        _options = options;
        _seed = seed;
    }

    public PowerCutFailure? Run(PowerCutReport report)
    {
        var random = new Random(_seed);
        var chains = PowerCutSimulation.ChainsOf(_options);
        string chain = chains[random.Next(chains.Count)];
        var variant = (PowerCutVariant)random.Next(3);
        var cutRandom = new Random(unchecked(_seed * 31 + 7));
        ulong sectors = (ulong)_options.DiskSectors;
        var specs = PowerCutSimulation.Specs(chain, _options);
        var extra = _options.ExtraChains.FirstOrDefault(c => c.Name == chain);
        var model = new SectorModel(sectors);
        var storage = new PowerCutStorage(PowerCutSimulation.Directory) { LyingFlushes = _options.LyingFlushes };
        var image = new byte[sectors * 512];
        for (ulong s = 0; s < sectors; s++) SectorStamps.Fill(image.AsSpan((int)s * 512, 512), 0, s);
        storage.AddDurableFile($"{PowerCutSimulation.Directory}/disk.raw", image);
        try
        {
            extra?.Prepare?.Invoke(storage); // before arming: the cut falls in the workload, counted from here
            storage.ArmCut(storage.Operations + 1 + random.Next(_options.RequestsPerCut * 2), variant, cutRandom);
            var after = BeforeCut(specs, storage, model, random, sectors, variant, cutRandom, report);
            if (after != null)
            {
                Verify(specs, after, model, sectors, report);
                if (extra?.Check != null) foreach (var p in extra.Check(after)) Problem($"check after the cut: {p}");
            }
        }
        catch (Exception ex)
        {
            Problem($"exception escaped: {ex.GetType().Name}: {ex.Message}");
        }
        report.PowerCuts++;
        report.ByChain[chain] = report.ByChain.GetValueOrDefault(chain) + 1;
        report.ByVariant[variant] = report.ByVariant.GetValueOrDefault(variant) + 1;
        report.TornWrites += storage.TornWrites;
        report.Violations += _violations;
        report.LostAfterFlush += _lost;
        return _violations == 0 ? null : new PowerCutFailure(_seed, chain, variant, _violations, _lost, string.Join(" | ", _problems));
    }

    private PowerCutStorage? BeforeCut(IReadOnlyList<TapSpec> specs, PowerCutStorage storage, SectorModel model, Random random, ulong sectors,
        PowerCutVariant variant, Random cutRandom, PowerCutReport report)
    {
        var seen = _options.WrapStorage?.Invoke(storage) ?? storage;
        var chain = _options.Registry.Build(specs, new TapContext { Output = TextWriter.Null, Seed = _seed, Storage = seen });
        try
        {
            using var driver = new LoopDriver(chain);
            var workload = new PowerCutWorkload(driver, storage, model, random, sectors);
            if (driver.Session.Sectors != sectors)
            {
                // Only a cut while the chain attached (cow creating its overlay) may leave it without its disk.
                if (!storage.IsCut) Problem($"attach: the chain gave the disk {driver.Session.Sectors} sectors, expected {sectors}: {driver.ErrorDiagnostics()}");
            }
            else if (!workload.Run(_options.RequestsPerCut))
            {
                Problem("a request was never answered before the cut");
            }
            var after = storage.Cut(variant, cutRandom);
            if (!workload.Drain())
            {
                lock (Abandoned) Abandoned.Add(workload.Buffers);
                Problem("requests in flight at the cut were never answered");
            }
            foreach (var p in workload.Problems) Problem(p);
            report.AcknowledgedWrites += workload.AcknowledgedWrites;
            report.CompletedFlushes += workload.CompletedFlushes;
            if (workload.AnsweredAfterCut > 0) report.CutsWithRequestsInFlight++;
            return after;
        }
        finally
        {
            chain.Dispose();
        }
    }

    private void Verify(IReadOnlyList<TapSpec> specs, PowerCutStorage after, SectorModel model, ulong sectors, PowerCutReport report)
    {
        TapChain chain;
        try { chain = _options.Registry.Build(specs, new TapContext { Output = TextWriter.Null, Seed = _seed, Storage = after }); }
        catch (ChainSpecException ex) { Problem($"reopen: {ex.Message}"); return; }
        try
        {
            using var driver = new LoopDriver(chain);
            if (driver.Session.Sectors != sectors)
            {
                Problem($"reopen: the chain gave the disk {driver.Session.Sectors} sectors, expected {sectors}: {driver.ErrorDiagnostics()}");
                return;
            }
            const int Chunk = 128;
            var buffer = GC.AllocateArray<byte>(Chunk * 512, pinned: true);
            for (ulong at = 0; at < sectors; at += Chunk)
            {
                ulong count = Math.Min(Chunk, sectors - at);
                bool done = false;
                var status = BlkifStatus.Error;
                driver.Session.Submit(new BufferRequest
                {
                    Operation = BlkifOperation.Read, Sector = at, Length = (int)count * 512,
                    Data = Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0),
                    Completed = b => { status = b.Status; done = true; },
                });
                if (!driver.RunUntil(() => done, Deadline))
                {
                    lock (Abandoned) Abandoned.Add(buffer);
                    Problem($"reopen: the read of sectors {at}+{count} was never answered");
                    return;
                }
                if (status != BlkifStatus.Okay) { Problem($"reopen: reading sectors {at}+{count} answered {status}: {driver.ErrorDiagnostics()}"); return; }
                for (ulong s = 0; s < count; s++)
                {
                    long found = SectorStamps.Identify(buffer.AsSpan((int)s * 512, 512), at + s);
                    var wrong = model.Check(at + s, found, out bool lost);
                    if (wrong == null) continue;
                    if (lost) _lost++;
                    Problem(lost ? "lost after flush: " + wrong : wrong);
                }
                report.SectorsChecked += (long)count;
            }
            if (driver.ErrorDiagnostics() is { Length: > 0 } errors) Problem($"reopen: {errors}");
        }
        finally
        {
            chain.Dispose();
        }
    }

    private void Problem(string description)
    {
        _violations++;
        if (_problems.Count < 4) _problems.Add(description);
    }
}
