using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Cli.Output;
using BlkTap.Emulator;
using BlkTap.Examples;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap demo</c>: the main job on the embedded default.</summary>
internal static class DemoCommand
{
    public static Command Create(CliIo io)
    {
        var seed = new Option<int>("--seed") { Description = "seed of the workload (default 1)", DefaultValueFactory = _ => 1 };
        var cmd = new Command("demo", "the main job: the emulator with two guest domains, a dump → cow → mem chain in dom0, a verified random workload, and a summary");
        var json = CliJson.Option("the same object as 'blktap run --json'");
        cmd.Options.Add(seed);
        cmd.Options.Add(json);
        cmd.SetAction(async (parse, ct) =>
        {
            var dir = Directory.CreateTempSubdirectory("blktap-demo-");
            try
            {
                return await Run(parse, dir.FullName);
            }
            finally
            {
                dir.Delete(recursive: true);
            }
        });
        return cmd;

        Task<int> Run(ParseResult parse, string dir) => ChainRun.RunAsync(new ChainRun.Settings(
            Specs: [TapSpec.Parse("dump:quiet=true"), TapSpec.Parse($"cow:overlay={Path.Combine(dir, "demo.cow")}"), TapSpec.Parse("mem:size=64M")],
            Registry: ExampleTaps.CreateRegistry(),
            Frontends: 2,
            Workload: new WorkloadOptions { OperationsPerFrontend = 2000, QueueDepth = 16, Seed = parse.GetValue(seed) },
            Deterministic: false,
            Seed: parse.GetValue(seed),
            Protocol: BlkifProtocol.X86_64,
            ShowDump: false,
            Json: parse.GetValue(json)), io);
    }
}
