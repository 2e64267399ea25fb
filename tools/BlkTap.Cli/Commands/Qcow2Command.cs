using System.CommandLine;
using BlkTap.Chains;
using BlkTap.Cli.Output;
using BlkTap.Examples.Qcow2;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap qcow2 create [-b BACKING -F FMT] FILE [SIZE] [--cluster-size N]</c> and <c>blktap qcow2 check FILE</c>:
/// makes qcow2 version 3 images and checks their refcounts like <c>qemu-img check</c> (docs/qcow2.md).
/// Exit codes: 0 done or clean, 1 the check found errors or leaks, 2 bad input (one line naming the file and problem).
/// </summary>
internal static class Qcow2Command
{
    public static Command Create(CliIo io)
    {
        var qcow2 = new Command("qcow2", "make and check qcow2 images (qemu's format; served by --tap qcow2:path=FILE; see docs/qcow2.md)");
        qcow2.Subcommands.Add(CreateVerb(io));
        qcow2.Subcommands.Add(CheckVerb(io));
        return qcow2;
    }

    private static Command CreateVerb(CliIo io)
    {
        var file = new Argument<string>("FILE") { Description = "the image to create (must not exist)" };
        var size = new Argument<string?>("SIZE") { Description = "virtual disk size (512, 64K, 10M, 2G...); default: the backing file's", Arity = ArgumentArity.ZeroOrOne };
        var backing = new Option<string?>("--backing", "-b") { Description = "backing file (read through for clusters the image does not hold; relative to FILE's directory)" };
        var format = new Option<string?>("--backing-format", "-F") { Description = "backing file format: raw or qcow2 (default: probed)" };
        var cluster = new Option<string>("--cluster-size") { Description = "cluster size, a power of two from 512 to 2M (default 64K)", DefaultValueFactory = _ => "64K" };
        var create = new Command("create", "create an empty qcow2 version 3 image");
        create.Arguments.Add(file);
        create.Arguments.Add(size);
        create.Options.Add(backing);
        create.Options.Add(format);
        create.Options.Add(cluster);
        var createJson = CliJson.Option("file, size_bytes, cluster_size, backing_file");
        create.Options.Add(createJson);
        create.SetAction(parse =>
        {
            string path = parse.GetValue(file)!;
            string? sizeText = parse.GetValue(size), clusterText = parse.GetValue(cluster)!;
            long? bytes = null;
            if (sizeText != null)
            {
                if (!Sizes.TryParse(sizeText, out long b) || b <= 0) return io.BadInput($"qcow2 create: size '{sizeText}' is not a size (examples: 512, 64K, 10M, 2G)");
                bytes = b;
            }
            if (!Sizes.TryParse(clusterText, out long cs) || cs > int.MaxValue) return io.BadInput($"qcow2 create: --cluster-size '{clusterText}' is not a size");
            try
            {
                Qcow2Creator.Create(path, bytes, (int)cs, parse.GetValue(backing), parse.GetValue(format));
                using var made = Qcow2Image.Open(path, writable: false);
                if (parse.GetValue(createJson))
                    CliJson.Write(io.Out, new { file = path, format = "qcow2", version = 3, size_bytes = made.Size, cluster_size = made.ClusterSize, backing_file = made.BackingFile });
                else io.Out.WriteLine($"created {path}: qcow2 v3, {made.Size} bytes, {made.ClusterSize}-byte clusters{(made.BackingFile != null ? $", backing file {made.BackingFile}" : "")}");
                return CliApp.Ok;
            }
            catch (Qcow2FormatException ex) { return io.BadInput(ex.Message); }
        });
        return create;
    }

    private static Command CheckVerb(CliIo io)
    {
        var file = new Argument<string>("FILE") { Description = "the image to check (read only)" };
        var check = new Command("check", "check a qcow2 image's refcounts and tables like qemu-img check (exit 1 on errors or leaks)");
        check.Arguments.Add(file);
        var checkJson = CliJson.Option("file, errors, leaks, leaked_clusters, clean");
        check.Options.Add(checkJson);
        check.SetAction(parse =>
        {
            string path = parse.GetValue(file)!;
            Qcow2CheckResult result;
            try { result = Qcow2Checker.Check(path); }
            catch (Qcow2FormatException ex) { return io.BadInput(ex.Message); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return io.BadInput($"qcow2 image '{path}' cannot be read: {ex.Message}"); }
            if (parse.GetValue(checkJson))
            {
                CliJson.Write(io.Out, new { file = path, errors = result.Errors, leaks = result.Leaks, error_count = result.Errors.Count, leaked_clusters = result.LeakedClusters, clean = result.Clean });
                return result.Clean ? CliApp.Ok : CliApp.Failure;
            }
            foreach (var e in result.Errors) io.Out.WriteLine($"ERROR {e}");
            foreach (var l in result.Leaks) io.Out.WriteLine($"Leaked {l}");
            io.Out.WriteLine(result.Errors.Count == 0 ? "No errors were found on the image." : $"{result.Errors.Count} errors were found on the image.");
            if (result.LeakedClusters > 0) io.Out.WriteLine($"{result.LeakedClusters} leaked clusters were found on the image.");
            return result.Clean ? CliApp.Ok : CliApp.Failure;
        });
        return check;
    }
}
