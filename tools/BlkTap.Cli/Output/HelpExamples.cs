using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace BlkTap.Cli.Output;

/// <summary>
/// The "Examples:" section of every verb's help, like a man page's EXAMPLES: one table for the whole command, keyed by
/// the verb's path, printed after System.CommandLine's help of that verb. The table is immutable; thread-safe.
/// </summary>
/// <remarks>A verb added without an entry here fails <c>HelpTests.Help_EveryVerb_ShowsAnExample</c>.</remarks>
internal static class HelpExamples
{
    /// <summary>Each verb's examples: the command line, then what it does.</summary>
    public static readonly IReadOnlyDictionary<string, (string Line, string What)[]> ByVerb = new Dictionary<string, (string, string)[]>
    {
        [""] =
        [
            ("blktap demo", "the main job: two emulated guests through a dump → cow → mem chain, every read verified"),
            ("blktap run --tap dump --tap mem:size=64M --workload random:ops=2000,qd=16", "any chain under a verified workload"),
            ("blktap <verb> --help", "each verb's options and examples"),
        ],
        ["demo"] =
        [
            ("blktap demo", "run it and print what happened per session; exit 0 when every read matched"),
            ("blktap demo --seed 7 --json", "another workload, the summary as one JSON object"),
        ],
        ["run"] =
        [
            ("blktap run --tap dump --tap mem:size=64M --frontends 4 --workload random:ops=2000,qd=16", "four guests, 2000 operations each"),
            ("blktap run --tap mem --deterministic --seed 42 --json", "one thread, seeded scheduling: the same JSON every time"),
            ("blktap run --tap crypt:keyfile=k.bin --tap img:path=disk.raw", "an encrypted image file as the disk"),
        ],
        ["taps"] =
        [
            ("blktap taps", "every tap with its options"),
            ("blktap taps --plugins ./plugins --json", "with the plugins of ./plugins, as JSON"),
        ],
        ["bench"] =
        [
            ("blktap bench --quick --only img,nbd", "a quick smoke run of two groups"),
            ("blktap bench --json --plot bench-plots", "every group, as JSON, and one PNG of ratios per group in bench-plots/"),
        ],
        ["fuzz"] =
        [
            ("blktap fuzz --seed 1 --iterations 1000000 --json", "10^6 hostile requests against the invariants"),
            ("blktap fuzz --seed 1 --power-cuts 10000 --json", "and power cuts of img, aio and cow: nothing flushed may be lost"),
            ("blktap fuzz --round 123456", "replay one failing round, as printed by a failure"),
        ],
        ["shm"] = [("blktap shm serve /tmp/shm --tap mem", "serve one external frontend over /tmp/shm/mem and /tmp/shm/evtchn")],
        ["shm serve"] =
        [
            ("blktap shm serve /tmp/shm --tap mem", "serve one external frontend, then exit"),
            ("blktap shm serve /tmp/shm --tap dump --tap img:path=disk.raw --keep-serving", "serve frontend after frontend until SIGTERM"),
        ],
        ["xen"] = [("blktap xen serve --tap img", "serve guests' disks from dom0 (docs/xen-deploy.md)")],
        ["xen serve"] =
        [
            ("blktap xen serve --tap img", "serve every guest disk of type vbd3 from dom0, the image named by the disk's params"),
            ("blktap xen serve --tap dump:quiet=true --tap img", "the same, every request also counted by dump"),
        ],
        ["xen attach"] = [("blktap xen attach --domain 3 --vdev xvdb --params /srv/disk.raw", "give domain 3 a disk xvdb served by 'blktap xen serve'")],
        ["xen detach"] = [("blktap xen detach --domain 3 --vdev xvdb", "take it away again once the guest lets go")],
        ["nbd"] = [("blktap nbd serve --unix /tmp/x.sock --tap img:path=disk.raw", "export an image to NBD clients")],
        ["nbd serve"] =
        [
            ("blktap nbd serve --unix /tmp/x.sock --tap dump:quiet=true --tap img:path=disk.raw", "then: nbdinfo 'nbd+unix:///?socket=/tmp/x.sock'"),
            ("blktap nbd serve --port 10809 --tap qcow2:path=disk.qcow2 --readonly", "a read-only qcow2 export on TCP 127.0.0.1:10809"),
        ],
        ["replay"] =
        [
            ("blktap replay cap.bt --tap mem --timing fast --verify", "as fast as the queue depth allows, every read checked"),
            ("blktap replay cap.bt --tap mem --json --plot cap.png --hdr-log cap.hlog", "the report as JSON, a picture and an HdrHistogram log"),
            ("blktap replay trace.csv --input-format msr --tap img:path=disk.raw --timing scale=0.5", "an MSR Cambridge trace at twice its speed"),
        ],
        ["trace"] = [("blktap trace info cap.bt", "what a trace holds")],
        ["trace export"] =
        [
            ("blktap trace export cap.bt --output-format fio -o cap.iolog --target /dev/shm/disk.raw", "a fio iolog v3 (then: fio --read_iolog=cap.iolog ...)"),
            ("blktap trace export trace.csv --input-format msr --output-format text -o trace.txt", "an MSR trace in the text form"),
        ],
        ["trace info"] =
        [
            ("blktap trace info cap.bt", "format, records, sessions, operation mix and time span"),
            ("blktap trace info blk.txt --input-format blkparse --json", "of blkparse output, as JSON"),
        ],
        ["cow"] = [("blktap cow commit disk.cow --base base.raw", "fold an overlay into its base")],
        ["cow commit"] =
        [
            ("blktap cow commit disk.cow --base base.raw", "fold the overlay into base.raw and empty it"),
            ("blktap cow commit disk.cow --base base.raw --json", "the same, reporting sectors and bytes as JSON"),
        ],
        ["qcow2"] = [("blktap qcow2 create disk.qcow2 10G", "an empty 10 GiB image")],
        ["qcow2 create"] =
        [
            ("blktap qcow2 create disk.qcow2 10G", "an empty 10 GiB image with 64K clusters"),
            ("blktap qcow2 create -b base.raw -F raw disk.qcow2 --cluster-size 64K --json", "an overlay of base.raw, its size, as JSON"),
        ],
        ["qcow2 check"] =
        [
            ("blktap qcow2 check disk.qcow2", "refcounts and tables, like qemu-img check (exit 1: errors or leaks)"),
            ("blktap qcow2 check disk.qcow2 --json", "the same, as JSON"),
        ],
    };

    /// <summary>
    /// Makes <paramref name="root"/>'s help option (recursive: every verb's <c>--help</c>) print the verb's examples after
    /// System.CommandLine's own help text, to <paramref name="output"/> (the invocation's stdout).
    /// </summary>
    public static void Apply(RootCommand root, TextWriter output)
    {
        var paths = Walk(root, "").ToDictionary(x => x.Command, x => x.Path);
        foreach (var help in root.Options.OfType<HelpOption>())
            if (help.Action is HelpAction inner) help.Action = new WithExamples(inner, paths, output);
    }

    /// <summary>The examples section of the verb at <paramref name="path"/>, or null when it has none.</summary>
    public static string? Section(string path)
    {
        if (!ByVerb.TryGetValue(path, out var examples)) return null;
        var w = new StringWriter();
        w.WriteLine("Examples:");
        foreach (var (line, what) in examples)
        {
            w.WriteLine($"  # {what}");
            w.WriteLine($"  {line}");
        }
        return w.ToString();
    }

    /// <summary>True when <paramref name="parse"/> asks for help (then missing arguments do not matter).</summary>
    public static bool IsHelp(ParseResult parse) => parse.Action is HelpAction or WithExamples;

    private sealed class WithExamples(HelpAction inner, Dictionary<Command, string> paths, TextWriter output) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            int rc = inner.Invoke(parseResult);
            if (paths.TryGetValue(parseResult.CommandResult.Command, out var path) && Section(path) is { } section)
            {
                output.Write(section);
                output.WriteLine();
            }
            return rc;
        }
    }

    /// <summary>Every command under <paramref name="command"/> (itself included) with its path of verb names ("" for the root).</summary>
    public static IEnumerable<(Command Command, string Path)> Walk(Command command, string path)
    {
        yield return (command, path);
        foreach (var sub in command.Subcommands)
            foreach (var x in Walk(sub, path.Length == 0 ? sub.Name : $"{path} {sub.Name}"))
                yield return x;
    }
}
