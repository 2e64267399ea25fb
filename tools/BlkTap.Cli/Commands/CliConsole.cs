using Spectre.Console;

namespace BlkTap.Cli.Commands;

/// <summary>Spectre consoles for command output: colours and the terminal's width on a terminal, plain text elsewhere.</summary>
internal static class CliConsole
{
    /// <summary>A console writing to <paramref name="io"/>'s stdout.</summary>
    public static IAnsiConsole Create(CliIo io, int plainWidth = 120)
    {
        bool terminal = io.Out == Console.Out && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(io.Out),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!terminal) console.Profile.Width = plainWidth;
        return console;
    }
}
