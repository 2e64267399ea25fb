using System.CommandLine;
using Spectre.Console;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap taps</c>: every tap found, built-in and plugins, with its options.</summary>
internal static class TapsCommand
{
    public static Command Create(CliIo io)
    {
        var plugins = ChainOptions.Plugins();
        var cmd = new Command("taps", "list every tap found (built-in and plugins) with its options");
        cmd.Options.Add(plugins);
        cmd.SetAction(parse =>
        {
            var registry = ChainOptions.Registry(parse.GetValue(plugins));
            foreach (var f in registry.Factories.OrderBy(f => f.IsTerminator).ThenBy(f => f.Name, StringComparer.Ordinal))
            {
                var origin = registry.Origins[f.Name];
                io.Out.WriteLine($"{f.Name,-6} {(f.IsTerminator ? "terminator " : "interposer ")} {f.Description}{(origin == "built-in" ? "" : $" [plugin: {origin}]")}");
                foreach (var o in f.Options)
                    io.Out.WriteLine($"         {o.Key}=...{(o.Required ? " (required)" : "")}  {o.Description}");
            }
            return CliApp.Ok;
        });
        return cmd;
    }
}
