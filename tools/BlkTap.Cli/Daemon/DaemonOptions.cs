using System.CommandLine;

namespace BlkTap.Cli.Daemon;

/// <summary>What <c>--pidfile</c> and <c>--metrics</c> chose for a serve verb. An immutable value.</summary>
/// <param name="PidFile">Where to write the process id once serving (removed at exit), or null.</param>
/// <param name="Metrics">The Prometheus endpoint (<c>http://HOST:PORT/PATH</c>), or null.</param>
internal sealed record DaemonSettings(string? PidFile, Uri? Metrics);

/// <summary>The options every serve verb shares: <c>--pidfile</c> (<c>-P</c>, as nbdkit) and <c>--metrics URL</c>.</summary>
/// <remarks>Threading: one instance per command tree; create it on the thread that builds the command.</remarks>
internal sealed class DaemonOptions
{
    private readonly Option<string> _pidFile = new("--pidfile", "-P")
    {
        Description = "write the process id to this file once serving (after the socket listens), remove it at exit",
    };

    private readonly Option<string> _metrics = new("--metrics")
    {
        Description = "serve Prometheus metrics (requests, bytes, errors, rejected, latency; per tap and session) at this URL, e.g. http://127.0.0.1:9110/metrics",
    };

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(_pidFile);
        command.Options.Add(_metrics);
    }

    /// <summary>Reads and checks the options; a problem is one line for <see cref="CliIo.BadInput"/>.</summary>
    public DaemonSettings Read(ParseResult parse, out string? problem)
    {
        problem = null;
        var pid = parse.GetValue(_pidFile);
        if (pid != null && Path.GetDirectoryName(Path.GetFullPath(pid)) is { } dir && !Directory.Exists(dir))
            problem = $"--pidfile '{pid}': directory '{dir}' does not exist";
        Uri? url = null;
        var text = parse.GetValue(_metrics);
        if (text != null)
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out url) || url.Scheme != Uri.UriSchemeHttp || !HasExplicitPort(text) || url.Port == 0
                || !string.IsNullOrEmpty(url.Query) || url.AbsolutePath == "/")
            {
                problem ??= $"--metrics '{text}': give http://HOST:PORT/PATH, e.g. http://127.0.0.1:9110/metrics";
                url = null;
            }
        }
        return new DaemonSettings(pid, url);
    }

    private static bool HasExplicitPort(string url)
    {
        var authority = url["http://".Length..].Split('/')[0];
        return authority.LastIndexOf(':') > authority.LastIndexOf(']');
    }
}
