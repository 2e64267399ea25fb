using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Cli.Output;
using BlkTap.Emulator;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap run</c>: any chain driven by emulated frontends with a verified workload.</summary>
internal static class RunCommand
{
    public static Command Create(CliIo io)
    {
        var taps = ChainOptions.Tap();
        var plugins = ChainOptions.Plugins();
        var frontends = new Option<int>("--frontends") { Description = "number of guest domains (default 2)", DefaultValueFactory = _ => 2 };
        var workload = new Option<string>("--workload") { Description = "random[:ops=N,qd=N,max-sectors=N,writes=PCT,flushes=PCT,discards=PCT] (default random:ops=500)", DefaultValueFactory = _ => "random" };
        var seed = new Option<int>("--seed") { Description = "seed of the workload and of deterministic scheduling (default 1)", DefaultValueFactory = _ => 1 };
        var deterministic = new Option<bool>("--deterministic") { Description = "run everything on one thread with seeded scheduling (reproducible)" };
        var protocol = new Option<string>("--protocol") { Description = "x86_64-abi (default) or x86_32-abi", DefaultValueFactory = _ => BlkifProtocolNames.X86_64 };
        var json = CliJson.Option("chain, workload, sessions with their operation counts, tap sessions, ok");
        var cmd = new Command("run", "drive any chain with emulated guest domains running a verified random workload");
        foreach (var o in new Option[] { taps, plugins, frontends, workload, seed, deterministic, protocol, json }) cmd.Options.Add(o);
        cmd.SetAction((parse, ct) =>
        {
            int n = parse.GetValue(frontends);
            if (n is < 1 or > 64) return Task.FromResult(io.BadInput($"--frontends {n}: must be 1 to 64"));
            if (!BlkifProtocolNames.TryParse(parse.GetValue(protocol), out var proto)) return Task.FromResult(io.BadInput($"--protocol '{parse.GetValue(protocol)}': use x86_64-abi or x86_32-abi"));
            var w = ParseWorkload(parse.GetValue(workload)!, parse.GetValue(seed));
            return ChainRun.RunAsync(new ChainRun.Settings(ChainOptions.Specs(parse.GetValue(taps)), ChainOptions.Registry(parse.GetValue(plugins)),
                n, w, parse.GetValue(deterministic), parse.GetValue(seed), proto, false, parse.GetValue(json)), io);
        });
        return cmd;
    }

    internal static WorkloadOptions ParseWorkload(string text, int seed)
    {
        var spec = TapSpec.Parse(text);
        if (spec.Name != "random") throw new ChainSpecException($"--workload '{text}': unknown workload '{spec.Name}' (known: random)");
        var known = new HashSet<string> { "ops", "qd", "max-sectors", "writes", "flushes", "discards" };
        foreach (var k in spec.Options.Keys) if (!known.Contains(k)) throw new ChainSpecException($"--workload: unknown option '{k}' (known: {string.Join(", ", known)})");
        var w = new WorkloadOptions
        {
            OperationsPerFrontend = (int)spec.GetInt64("ops", 500),
            QueueDepth = (int)spec.GetInt64("qd", 8),
            MaxSectors = (int)spec.GetInt64("max-sectors", 64),
            WritePercent = (int)spec.GetInt64("writes", 45),
            FlushPercent = (int)spec.GetInt64("flushes", 3),
            DiscardPercent = (int)spec.GetInt64("discards", 2),
            Seed = seed,
        };
        if (w.OperationsPerFrontend < 1 || w.QueueDepth < 1 || w.MaxSectors < 1 || w.WritePercent + w.FlushPercent + w.DiscardPercent > 100 || w.WritePercent < 0 || w.FlushPercent < 0 || w.DiscardPercent < 0)
            throw new ChainSpecException($"--workload '{text}': ops, qd and max-sectors must be positive and the percentages must add up to at most 100");
        return w;
    }
}
