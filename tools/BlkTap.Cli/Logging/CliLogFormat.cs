using Microsoft.Extensions.Logging;

namespace BlkTap.Cli.Logging;

/// <summary>How the serve verbs write log lines on stderr (<c>--log-format</c>).</summary>
public enum CliLogFormat
{
    /// <summary><see cref="Journal"/> when stderr goes to the journal (<c>JOURNAL_STREAM</c> is set), else <see cref="Text"/>.</summary>
    Auto,
    /// <summary><c>blktap: [warning: |error: ]message</c>, one line each.</summary>
    Text,
    /// <summary>One JSON object per line: <c>Timestamp</c>, <c>EventId</c>, <c>LogLevel</c>, <c>Category</c>, <c>Message</c>, <c>Exception</c>, <c>State</c>.</summary>
    Json,
    /// <summary>
    /// The message with its syslog priority as a <c>&lt;N&gt;</c> prefix (sd-daemon(3)), which journald strips and
    /// keeps as the entry's PRIORITY.
    /// </summary>
    Journal,
}

/// <summary>What <c>--log-level</c> and <c>--log-format</c> chose. An immutable value.</summary>
/// <param name="MinimumLevel">Lines below this level are not written.</param>
/// <param name="Format">The line format (never <see cref="CliLogFormat.Auto"/> once <see cref="Resolve"/>d).</param>
public sealed record CliLogSettings(LogLevel MinimumLevel, CliLogFormat Format)
{
    /// <summary>Information, text: what a verb uses when it is not given options.</summary>
    public static CliLogSettings Default { get; } = new(LogLevel.Information, CliLogFormat.Auto);

    /// <summary>Resolves <see cref="CliLogFormat.Auto"/> from the environment (<c>JOURNAL_STREAM</c>).</summary>
    public CliLogSettings Resolve() => Format != CliLogFormat.Auto ? this
        : this with { Format = string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM")) ? CliLogFormat.Text : CliLogFormat.Journal };
}
