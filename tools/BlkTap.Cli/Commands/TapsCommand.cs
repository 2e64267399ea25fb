using System.CommandLine;
using BlkTap.Cli.Output;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap taps [--json]</c>: every tap found, built-in and plugins, with its options.</summary>
internal static class TapsCommand
{
    public static Command Create(CliIo io)
    {
        var plugins = ChainOptions.Plugins();
        var json = CliJson.Option("taps: name, kind, description, origin, options");
        var cmd = new Command("taps", "list every tap found (built-in and plugins) with its options");
        cmd.Options.Add(plugins);
        cmd.Options.Add(json);
        cmd.SetAction(parse =>
        {
            var registry = ChainOptions.Registry(parse.GetValue(plugins));
            var factories = registry.Factories.OrderBy(f => f.IsTerminator).ThenBy(f => f.Name, StringComparer.Ordinal).ToList();
            if (parse.GetValue(json))
            {
                CliJson.Write(io.Out, new
                {
                    taps = factories.Select(f => new
                    {
                        name = f.Name,
                        kind = f.IsTerminator ? "terminator" : "interposer",
                        description = f.Description,
                        origin = registry.Origins[f.Name],
                        options = f.Options.Select(o => new { key = o.Key, required = o.Required, description = o.Description }),
                    }),
                });
                return CliApp.Ok;
            }
            foreach (var f in factories)
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
