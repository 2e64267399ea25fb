using System.Collections.Concurrent;
using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Cli.Output;
using BlkTap.Emulator;
using BlkTap.Emulator.PowerCut;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap fuzz</c>: generated request streams from honest, hostile and dying guests against the invariants, and power cuts.</summary>
internal static class FuzzCommand
{
    public static Command Create(CliIo io)
    {
        var seed = new Option<int>("--seed") { Description = "seed of the run (default 1); a failure prints the round seed that reproduces it", DefaultValueFactory = _ => 1 };
        var iterations = new Option<int>("--iterations")
        {
            Description = "hostile requests to try (default 10000): rounds run until this many requests a hostile guest put on the ring were judged and checked; the honest guests' operations come on top",
            DefaultValueFactory = _ => 10_000,
        };
        var perRound = new Option<int>("--round-size") { Description = "requests (honest and hostile) per emulated system before a fresh one starts (default 400)", DefaultValueFactory = _ => 400 };
        var parallel = new Option<int>("--parallel") { Description = "rounds run at once (default: one per core); the report is the same for any value", DefaultValueFactory = _ => Environment.ProcessorCount };
        var round = new Option<int?>("--round") { Description = "run only the round with this seed (as printed by a failure)" };
        var faultRounds = new Option<int>("--fault-rounds") { Description = "also run this many storage-fault / dying-blkback rounds (the tap interposed in its own domain; default 200)", DefaultValueFactory = _ => 200 };
        var powerCuts = new Option<int>("--power-cuts")
        {
            Description = "also simulate this many power cuts of the storage taps (img, aio, cow over img, cow over aio, qcow2 over raw, qcow2 over qcow2 over raw on a simulated disk that keeps only what was synced; default 0)",
            DefaultValueFactory = _ => 0,
        };
        var powerCut = new Option<int?>("--power-cut") { Description = "run only the power cut with this seed (as printed by a failure)" };
        var json = CliJson.Option("hostile_requests, violations, power_cuts, lost_after_flush, ...");
        var taps = ChainOptions.Tap(required: false);
        var plugins = ChainOptions.Plugins();
        var cmd = new Command("fuzz", "generated request streams (honest, hostile, dying guests, injected faults) through a chain in deterministic mode, checking the invariants; "
            + "with --power-cuts, power cuts of the storage taps checked against what was flushed");
        foreach (var o in new Option[] { seed, iterations, perRound, parallel, round, faultRounds, powerCuts, powerCut, json, taps, plugins }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            int n = parse.GetValue(iterations), size = parse.GetValue(perRound), cuts = parse.GetValue(powerCuts);
            bool asJson = parse.GetValue(json);
            if (n < 1) return io.BadInput($"--iterations {n}: must be at least 1");
            if (size < 4) return io.BadInput($"--round-size {size}: must be at least 4");
            int workers = parse.GetValue(parallel);
            if (workers < 1) return io.BadInput($"--parallel {workers}: must be at least 1");
            if (cuts < 0) return io.BadInput($"--power-cuts {cuts}: must be at least 0");
            var specs = ChainOptions.Specs(parse.GetValue(taps));
            if (specs.Count == 0) specs = [TapSpec.Parse("mem:size=1M")];
            var registry = ChainOptions.Registry(parse.GetValue(plugins));
            // Validate the chain once up front, so a bad spec is exit 2, not a failed round.
            registry.Build(specs, new TapContext { Output = TextWriter.Null }).Dispose();
            var cutOptions = new PowerCutOptions { Seed = parse.GetValue(seed), Cuts = cuts, Registry = registry, ExtraChains = Qcow2PowerCutChains.All };
            if (parse.GetValue(powerCut) is { } onlyCut) return ReplayCut(io, cutOptions, onlyCut, asJson);
            // The chain each round's runtime got, disposed when that round's system is torn down (rounds run in parallel).
            var made = new ConcurrentDictionary<TapRuntime, TapChain>();
            var options = new FuzzOptions
            {
                Seed = parse.GetValue(seed),
                Iterations = n,
                RequestsPerRound = size,
                Parallelism = workers,
                Configure = rt =>
                {
                    var chain = registry.Build(specs, new TapContext { Output = TextWriter.Null, Seed = parse.GetValue(seed) });
                    made[rt] = chain;
                    TapChain.Register(rt, chain);
                },
                Release = rt => { if (made.TryRemove(rt, out var chain)) chain.Dispose(); },
            };
            try
            {
                if (parse.GetValue(round) is { } only)
                {
                    var error = Fuzzer.RunRound(options, only, size, null);
                    if (asJson) CliJson.Write(io.Out, new { round = only, round_size = size, seed = options.Seed, chain = string.Join(" → ", specs.Select(s => s.Text)), violations = error == null ? 0 : 1, error, ok = error == null });
                    else io.Out.WriteLine(error == null ? $"round {only}: every invariant held" : $"round {only}: FAILED: {error}");
                    return error == null ? CliApp.Ok : CliApp.Failure;
                }
                var results = new FuzzResults { Seed = options.Seed, Chain = string.Join(" → ", specs.Select(s => s.Text)) };
                using (var bar = CliProgress.Start(io, "fuzz: hostile requests", n))
                {
                    options.Progress = (_, done) => bar.Value = done;
                    results.Fuzz = Fuzzer.Run(options);
                }
                int nFault = parse.GetValue(faultRounds);
                if (nFault > 0)
                {
                    // Interposition rounds: the terminator's storage fails at seeded calls, or the tap domain's
                    // blkfront to dom0's blkback dies mid-flight; guests must get ERROR, never a hang or wrong data.
                    results.FaultRounds = nFault;
                    results.Faults = FaultSimulation.Run(new FaultSimulationOptions { Seed = options.Seed, Rounds = nFault });
                }
                if (cuts > 0)
                {
                    // Power cuts: each keeps only what was synced (or a random part of the rest, or tears a write); every write
                    // acknowledged before a completed flush must be there after the chain is reopened.
                    using var bar = CliProgress.Start(io, "fuzz: power cuts", cuts);
                    cutOptions.Progress = done => bar.Value = done;
                    results.PowerCuts = PowerCutSimulation.Run(cutOptions);
                }
                if (asJson) FuzzReportWriter.WriteJson(io.Out, results);
                else FuzzReportWriter.WriteText(io.Out, results);
                if (results.PowerCuts?.Failures.FirstOrDefault() is { } first)
                    io.Err.WriteLine($"fuzz: first failing power cut: seed {first.CutSeed}, chain {first.Chain}, variant {FuzzReportWriter.VariantName(first.Variant)} (reproduce: blktap fuzz --power-cut {first.CutSeed})");
                return results.Violations == 0 ? CliApp.Ok : CliApp.Failure;
            }
            finally
            {
                foreach (var c in made.Values) c.Dispose();
            }
        });
        return cmd;
    }

    private static int ReplayCut(CliIo io, PowerCutOptions options, int cutSeed, bool asJson)
    {
        var report = new PowerCutReport();
        var failure = PowerCutSimulation.RunCut(options, cutSeed, report);
        var results = new FuzzResults { Seed = options.Seed, Chain = "", PowerCuts = report };
        if (failure != null) report.Failures.Add(failure);
        if (asJson) FuzzReportWriter.WriteJson(io.Out, results);
        else
        {
            string chain = report.ByChain.Keys.FirstOrDefault() ?? "?";
            string variant = report.ByVariant.Keys.Select(FuzzReportWriter.VariantName).FirstOrDefault() ?? "?";
            io.Out.WriteLine(failure == null
                ? $"power cut {cutSeed} (chain {chain}, variant {variant}): every write flushed before the cut was there"
                : $"power cut {cutSeed} (chain {chain}, variant {variant}): FAILED: {failure.Violations} violations, {failure.LostAfterFlush} sectors lost after a flush: {failure.Description}");
        }
        return failure == null ? CliApp.Ok : CliApp.Failure;
    }
}
