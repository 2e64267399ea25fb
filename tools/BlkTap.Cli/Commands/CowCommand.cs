using System.CommandLine;
using BlkTap.Examples;

namespace BlkTap.Cli.Commands;

/// <summary><c>blktap cow commit OVERLAY --base PATH</c>: folds a cow overlay into its base raw image, then empties the overlay.</summary>
internal static class CowCommand
{
    public static Command Create(CliIo io)
    {
        var cow = new Command("cow", "work with cow overlays (docs/cow-format.md)");
        var overlay = new Argument<string>("OVERLAY") { Description = "the overlay file" };
        var basePath = new Option<string>("--base") { Description = "the raw base image the overlay was made over (its size must match)", Required = true };
        var commit = new Command("commit", "fold the overlay into its base image, then empty the overlay (it stays valid for the same base)");
        commit.Arguments.Add(overlay);
        commit.Options.Add(basePath);
        commit.SetAction(parse => Commit(parse.GetValue(overlay)!, parse.GetValue(basePath)!, io));
        cow.Subcommands.Add(commit);
        return cow;
    }

    private static int Commit(string overlayPath, string basePath, CliIo io)
    {
        bool tty = io.Err == Console.Error && !Console.IsErrorRedirected;
        try
        {
            using var overlay = CowOverlay.Open(overlayPath);
            long lastTick = 0;
            ulong copied = overlay.CommitInto(basePath, tty ? (done, total) =>
            {
                long now = Environment.TickCount64;
                if (now - lastTick < 100 && done != total) return;
                lastTick = now;
                io.Err.Write($"\rcommitting {overlayPath}: {done * 512 / 1048576.0:F1} / {total * 512 / 1048576.0:F1} MiB ({(total == 0 ? 100 : done * 100 / total)}%)");
            } : null);
            if (tty && copied > 0) io.Err.WriteLine();
            io.Out.WriteLine($"committed {copied} sectors ({copied * 512 / 1048576.0:F2} MiB) from {overlayPath} into {basePath}; the overlay is now empty");
            return CliApp.Ok;
        }
        catch (CowFormatException ex) { return io.BadInput(ex.Message); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            io.Err.WriteLine($"blktap: cow commit failed: {ex.Message}");
            return CliApp.Failure;
        }
    }
}
