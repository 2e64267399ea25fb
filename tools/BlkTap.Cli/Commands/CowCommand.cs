using System.CommandLine;
using BlkTap.Cli.Output;
using BlkTap.Examples;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap cow commit OVERLAY --base PATH [--json]</c>: folds a cow overlay into its base raw image, then empties the
/// overlay. Progress: a bar on stderr when it is a terminal.
/// </summary>
internal static class CowCommand
{
    public static Command Create(CliIo io)
    {
        var cow = new Command("cow", "work with cow overlays (docs/cow-format.md)");
        var overlay = new Argument<string>("OVERLAY") { Description = "the overlay file" };
        var basePath = new Option<string>("--base") { Description = "the raw base image the overlay was made over (its size must match)", Required = true };
        var json = CliJson.Option("overlay, base, sectors, bytes");
        var commit = new Command("commit", "fold the overlay into its base image, then empty the overlay (it stays valid for the same base)");
        commit.Arguments.Add(overlay);
        commit.Options.Add(basePath);
        commit.Options.Add(json);
        commit.SetAction(parse => Commit(parse.GetValue(overlay)!, parse.GetValue(basePath)!, parse.GetValue(json), io));
        cow.Subcommands.Add(commit);
        return cow;
    }

    private static int Commit(string overlayPath, string basePath, bool asJson, CliIo io)
    {
        try
        {
            using var overlay = CowOverlay.Open(overlayPath);
            ulong copied;
            using (var bar = CliProgress.Start(io, $"committing {Path.GetFileName(overlayPath)}", 1))
                copied = overlay.CommitInto(basePath, (done, total) => { bar.Max = total; bar.Value = done; });
            if (asJson)
                CliJson.Write(io.Out, new { overlay = overlayPath, @base = basePath, sectors = copied, bytes = copied * 512, ok = true });
            else
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
