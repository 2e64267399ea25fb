using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Examples;

namespace BlkTap.Cli.Commands;

/// <summary>The <c>--tap</c> and <c>--plugins</c> options every chain-building verb shares.</summary>
internal static class ChainOptions
{
    public static Option<string[]> Tap(bool required = true) => new("--tap")
    {
        Description = "a tap of the chain, NAME[:key=value[,key=value...]], repeated from the frontend side to the terminator (see 'blktap taps')",
        AllowMultipleArgumentsPerToken = false,
        Required = required,
        Arity = required ? ArgumentArity.OneOrMore : ArgumentArity.ZeroOrMore,
    };

    public static Option<string[]> Plugins() => new("--plugins")
    {
        Description = "a directory of plugin assemblies with more taps (repeatable)",
        Arity = ArgumentArity.ZeroOrMore,
    };

    public static TapRegistry Registry(string[]? pluginDirs)
    {
        var registry = ExampleTaps.CreateRegistry();
        foreach (var dir in pluginDirs ?? [])
            registry.LoadPlugins(dir);
        var env = Environment.GetEnvironmentVariable("BLKTAP_PLUGINS");
        if (!string.IsNullOrEmpty(env))
            foreach (var dir in env.Split(':', StringSplitOptions.RemoveEmptyEntries)) registry.LoadPlugins(dir);
        return registry;
    }

    public static IReadOnlyList<TapSpec> Specs(string[]? taps) => (taps ?? []).Select(TapSpec.Parse).ToList();
}
