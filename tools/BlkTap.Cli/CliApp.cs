using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Cli.Commands;
using BlkTap.Cli.Output;

namespace BlkTap.Cli;

/// <summary>The <c>blktap</c> command: verbs, exit codes (0 ok, 1 the work found a failure, 2 bad usage or input).</summary>
public static class CliApp
{
    /// <summary>Exit code: success.</summary>
    public const int Ok = 0;
    /// <summary>Exit code: the work ran and found a failure.</summary>
    public const int Failure = 1;
    /// <summary>Exit code: bad usage or bad input.</summary>
    public const int BadInput = 2;

    /// <summary>Runs the command line and returns the exit code.</summary>
    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        var error = stderr ?? Console.Error;
        var parse = Parse(args, stdout ?? Console.Out, error, out var configuration);
        if (parse == null) return BadInput;
        return Invoke(() => parse.Invoke(configuration), error);
    }

    /// <summary>
    /// Runs the command line with <paramref name="cancellationToken"/> as the command's stop request
    /// (what SIGINT/SIGTERM do to the process): lets a caller in the same process (a test, a host)
    /// stop a long-running verb such as <c>shm serve --keep-serving</c> at a moment it chooses.
    /// Installs no signal handler of its own. Threading: call from any thread; one run per call.
    /// </summary>
    public static Task<int> RunAsync(string[] args, TextWriter? stdout, TextWriter? stderr, CancellationToken cancellationToken)
    {
        var error = stderr ?? Console.Error;
        var parse = Parse(args, stdout ?? Console.Out, error, out var configuration);
        if (parse == null) return Task.FromResult(BadInput);
        configuration.ProcessTerminationTimeout = null;
        return Task.Run(() => Invoke(() => parse.InvokeAsync(configuration, cancellationToken).GetAwaiter().GetResult(), error));
    }

    private static ParseResult? Parse(string[] args, TextWriter output, TextWriter error, out InvocationConfiguration configuration)
    {
        var root = new RootCommand("blktap: Xen block taps in user space, on a real dom0 or in an in-process emulator of Xen domains.");
        var global = new GlobalOptions();
        global.AddTo(root);
        var io = new CliIo(output, error) { Global = global };
        root.Subcommands.Add(DemoCommand.Create(io));
        root.Subcommands.Add(RunCommand.Create(io));
        root.Subcommands.Add(TapsCommand.Create(io));
        root.Subcommands.Add(BenchCommand.Create(io));
        root.Subcommands.Add(FuzzCommand.Create(io));
        root.Subcommands.Add(ShmCommand.Create(io));
        root.Subcommands.Add(XenCommand.Create(io));
        root.Subcommands.Add(NbdCommand.Create(io));
        root.Subcommands.Add(ReplayCommand.Create(io));
        root.Subcommands.Add(TraceCommand.Create(io));
        root.Subcommands.Add(CowCommand.Create(io));
        root.Subcommands.Add(Qcow2Command.Create(io));
        HelpExamples.Apply(root, output);
        configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        var parse = root.Parse(args);
        if (parse.Errors.Count == 0 || HelpExamples.IsHelp(parse)) return parse; // --help works whatever else is missing
        foreach (var e in parse.Errors) error.WriteLine($"blktap: {e.Message}");
        error.WriteLine("Try 'blktap --help'.");
        return null;
    }

    private static int Invoke(Func<int> invoke, TextWriter error)
    {
        try
        {
            return invoke();
        }
        catch (ChainSpecException ex)
        {
            error.WriteLine($"blktap: {ex.Message}");
            return BadInput;
        }
        catch (AggregateException ex) when (ex.InnerException is ChainSpecException inner)
        {
            error.WriteLine($"blktap: {inner.Message}");
            return BadInput;
        }
    }
}

/// <summary>Where a command prints, and the global options it may read.</summary>
public sealed record CliIo(TextWriter Out, TextWriter Err)
{
    /// <summary>The root command's global options (<c>--log-level</c>, <c>--log-format</c>); null outside <see cref="CliApp"/>.</summary>
    public GlobalOptions? Global { get; init; }

    /// <summary>The log settings a parse chose (<see cref="Logging.CliLogSettings.Default"/> without global options).</summary>
    public Logging.CliLogSettings LogSettings(System.CommandLine.ParseResult parse) => Global?.Read(parse) ?? Logging.CliLogSettings.Default;

    /// <summary>Prints one error line and returns the bad-input exit code.</summary>
    public int BadInput(string message)
    {
        Err.WriteLine($"blktap: {message}");
        return CliApp.BadInput;
    }
}
