using System.CommandLine;
using BlkTap.Cli.Commands;
using BlkTap.Examples;

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
        var output = stdout ?? Console.Out;
        var error = stderr ?? Console.Error;
        var root = new RootCommand("blktap: Xen block taps in user space, on a real dom0 or in an in-process emulator of Xen domains.");
        var io = new CliIo(output, error);
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
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) error.WriteLine($"blktap: {e.Message}");
            error.WriteLine("Try 'blktap --help'.");
            return BadInput;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
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

/// <summary>Where a command prints.</summary>
public sealed record CliIo(TextWriter Out, TextWriter Err)
{
    /// <summary>Prints one error line and returns the bad-input exit code.</summary>
    public int BadInput(string message)
    {
        Err.WriteLine($"blktap: {message}");
        return CliApp.BadInput;
    }
}
