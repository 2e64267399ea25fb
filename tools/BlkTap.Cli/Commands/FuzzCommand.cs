using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Emulator;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap fuzz</c>: generated request streams from honest, hostile and dying guests against the invariants.</summary>
internal static class FuzzCommand
{
    public static Command Create(CliIo io)
    {
        var seed = new Option<int>("--seed") { Description = "seed of the run (default 1); a failure prints the round seed that reproduces it", DefaultValueFactory = _ => 1 };
        var iterations = new Option<int>("--iterations") { Description = "requests to generate (default 10000)", DefaultValueFactory = _ => 10_000 };
        var perRound = new Option<int>("--round-size") { Description = "requests per emulated system before a fresh one starts (default 400)", DefaultValueFactory = _ => 400 };
        var round = new Option<int?>("--round") { Description = "run only the round with this seed (as printed by a failure)" };
        var faultRounds = new Option<int>("--fault-rounds") { Description = "also run this many storage-fault / dying-blkback rounds (the tap interposed in its own domain; default 200)", DefaultValueFactory = _ => 200 };
        var taps = ChainOptions.Tap(required: false);
        var plugins = ChainOptions.Plugins();
        var cmd = new Command("fuzz", "generated request streams (honest, hostile, dying guests, injected faults) through a chain in deterministic mode, checking the invariants");
        foreach (var o in new Option[] { seed, iterations, perRound, round, faultRounds, taps, plugins }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            int n = parse.GetValue(iterations), size = parse.GetValue(perRound);
            if (n < 1) return io.BadInput($"--iterations {n}: must be at least 1");
            if (size < 4) return io.BadInput($"--round-size {size}: must be at least 4");
            var specs = ChainOptions.Specs(parse.GetValue(taps));
            if (specs.Count == 0) specs = [TapSpec.Parse("mem:size=1M")];
            var registry = ChainOptions.Registry(parse.GetValue(plugins));
            // Validate the chain once up front, so a bad spec is exit 2, not a failed round.
            registry.Build(specs, new TapContext { Output = TextWriter.Null }).Dispose();
            var made = new List<TapChain>();
            var options = new FuzzOptions
            {
                Seed = parse.GetValue(seed),
                Iterations = n,
                RequestsPerRound = size,
                Configure = rt =>
                {
                    var chain = registry.Build(specs, new TapContext { Output = TextWriter.Null, Seed = parse.GetValue(seed) });
                    lock (made) made.Add(chain);
                    TapChain.Register(rt, chain);
                },
                Progress = (rounds, done) => { if (!Console.IsErrorRedirected) io.Err.Write($"\rfuzz: {done}/{n} requests, {rounds} rounds"); },
            };
            try
            {
                if (parse.GetValue(round) is { } only)
                {
                    var error = Fuzzer.RunRound(options, only, size, null);
                    io.Out.WriteLine(error == null ? $"round {only}: every invariant held" : $"round {only}: FAILED: {error}");
                    return error == null ? CliApp.Ok : CliApp.Failure;
                }
                var report = Fuzzer.Run(options);
                if (!Console.IsErrorRedirected) io.Err.WriteLine();
                io.Out.WriteLine($"fuzz: seed {options.Seed}, chain {string.Join(" → ", specs.Select(s => s.Text))}");
                io.Out.WriteLine($"  {report.Rounds} rounds in {report.Elapsed.TotalSeconds:F1} s: {report.HonestOperations} honest operations checked against the model, {report.HostileRequests} hostile requests checked");
                io.Out.WriteLine($"  hostile kinds: {string.Join(", ", report.HostileKinds.OrderByDescending(k => k.Value).Select(k => $"{k.Key} {k.Value}"))}");
                io.Out.WriteLine($"  faults: {report.Delayed} reordered, {report.InjectedFailures} injected errors, {report.SpuriousNotifications} spurious notifications, {report.ProtocolBreaks} ring-protocol breaks, {report.DomainDeaths} guests destroyed mid-flight");
                foreach (var f in report.Failures)
                    io.Out.WriteLine($"  FAILED round seed {f.RoundSeed} (reproduce: blktap fuzz --round {f.RoundSeed} --round-size {f.Requests}): {f.Description}");
                int failures = report.Failures.Count;
                int nFault = parse.GetValue(faultRounds);
                if (nFault > 0)
                {
                    // Interposition rounds: the terminator's storage fails at seeded calls, or the tap domain's
                    // blkfront to dom0's blkback dies mid-flight; guests must get ERROR, never a hang or wrong data.
                    var faults = FaultSimulation.Run(new FaultSimulationOptions { Seed = options.Seed, Rounds = nFault });
                    io.Out.WriteLine($"  fault simulation: {nFault} rounds in {faults.Elapsed.TotalSeconds:F1} s ({string.Join(", ", faults.Rounds.Select(k => $"{k.Key} {k.Value}"))}): {faults.Operations} operations, {faults.DeviceFailures} storage failures, {faults.DeathsWithRequestsInFlight} blkback deaths with requests in flight, {faults.CoalescedNotifications} coalesced notifications");
                    foreach (var f in faults.Failures)
                        io.Out.WriteLine($"  FAILED fault round seed {f.RoundSeed} ({f.Kind}): {f.Description}");
                    failures += faults.Failures.Count;
                }
                io.Out.WriteLine(failures == 0 ? "fuzz: every invariant held" : $"fuzz: {failures} failing round(s)");
                return failures == 0 ? CliApp.Ok : CliApp.Failure;
            }
            finally
            {
                foreach (var c in made) c.Dispose();
            }
        });
        return cmd;
    }
}
