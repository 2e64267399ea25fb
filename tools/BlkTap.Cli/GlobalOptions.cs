using System.CommandLine;
using BlkTap.Cli.Logging;
using Microsoft.Extensions.Logging;

namespace BlkTap.Cli;

/// <summary>
/// The options of every verb (recursive on the root command): <c>--log-level</c> and <c>--log-format</c>. The serve
/// verbs log through <see cref="ILogger"/> with them; verbs that print a report keep their output as it is.
/// </summary>
/// <remarks>Threading: one instance per command tree; create it on the thread that builds the tree.</remarks>
public sealed class GlobalOptions
{
    /// <summary><c>--log-level</c>: trace, debug, information (default), warning, error, critical or none.</summary>
    public Option<LogLevel> LogLevel { get; } = new("--log-level")
    {
        Description = "lowest level of log lines written to stderr: trace, debug, information (default), warning, error, critical, none",
        DefaultValueFactory = _ => Microsoft.Extensions.Logging.LogLevel.Information,
        Recursive = true,
        HelpName = "LEVEL",
    };

    /// <summary><c>--log-format</c>: auto (default), text, json or journal.</summary>
    public Option<CliLogFormat> LogFormat { get; } = new("--log-format")
    {
        Description = "log lines as text ('blktap: ...'), json (one object a line) or journal (<N> priority prefixes for journald); auto: journal when stderr is the journal, else text",
        DefaultValueFactory = _ => CliLogFormat.Auto,
        Recursive = true,
        HelpName = "FORMAT",
    };

    /// <summary>Adds the options to the root command.</summary>
    public void AddTo(Command root)
    {
        root.Options.Add(LogLevel);
        root.Options.Add(LogFormat);
    }

    /// <summary>What a parse chose.</summary>
    public CliLogSettings Read(ParseResult parse) => new(parse.GetValue(LogLevel), parse.GetValue(LogFormat));
}
