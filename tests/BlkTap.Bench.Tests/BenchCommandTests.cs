using System.Text.Json;
using BlkTap.Cli;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Bench.Tests;

/// <summary>
/// <c>blktap bench --json --quick --results PAGE</c>, run once in-process (a smoke test of every
/// benchmark: correctness only, no timing assertions), then checked line by line.
/// </summary>
[TestFixture]
[NonParallelizable]
public class BenchCommandTests
{
    private const string NotesMarker = "hand-written profile notes that must survive regeneration";
    private string _dir = null!;
    private string _page = null!;
    private int _exit;
    private string _stdout = null!;
    private string _stderr = null!;

    [OneTimeSetUp]
    public void RunBenchOnce()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"bench-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
        _page = Path.Combine(_dir, "RESULTS.md");
        File.WriteAllText(_page, $"# old page\n\n| stale | row |\n\n<!-- notes: kept when the page is regenerated -->\n## Notes\n{NotesMarker}\n<!-- /notes -->\n");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        _exit = CliApp.Run(["bench", "--json", "--quick", "--results", _page], stdout, stderr);
        _stdout = stdout.ToString();
        _stderr = stderr.ToString();
    }

    [OneTimeTearDown]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private static string[] NbdJobs => ["4 KiB randread, iodepth 32", "4 KiB randwrite, iodepth 32", "1 MiB sequential read, iodepth 32"];

    private Dictionary<string, JsonElement> Results(JsonDocument doc)
    {
        var map = new Dictionary<string, JsonElement>();
        foreach (var r in doc.RootElement.GetProperty("results").EnumerateArray()) map[r.GetProperty("name").GetString()!] = r.Clone();
        return map;
    }

    /// <summary>Asserts a line is measured against a present baseline: both figures positive and a ratio.</summary>
    private static void AssertMeasured(Dictionary<string, JsonElement> results, string name)
    {
        Assert.That(results, Contains.Key(name), $"missing line '{name}'");
        var r = results[name];
        Assert.That(r.GetProperty("ours").GetDouble(), Is.GreaterThan(0), $"{name}: ours");
        Assert.That(r.GetProperty("theirs").ValueKind, Is.EqualTo(JsonValueKind.Number), $"{name}: theirs missing ({r.GetProperty("note")})");
        Assert.That(r.GetProperty("theirs").GetDouble(), Is.GreaterThan(0), $"{name}: theirs");
        Assert.That(r.GetProperty("ratio").ValueKind, Is.EqualTo(JsonValueKind.Number), $"{name}: ratio");
    }

    [Test]
    public void BenchJsonQuick_Always_ExitsZeroWithExactlyOneJsonObjectOnStdout()
    {
        Assert.That(_exit, Is.EqualTo(CliApp.Ok), $"stderr: {_stderr}\nstdout: {_stdout}");
        var trimmed = _stdout.Trim();
        Assert.That(trimmed, Does.StartWith("{").And.EndWith("}"));
        Assert.That(trimmed.Split('\n'), Has.Length.EqualTo(1), "exactly one line: the JSON object");
        using var doc = JsonDocument.Parse(trimmed); // throws on trailing text or a second object
        Assert.That(doc.RootElement.ValueKind, Is.EqualTo(JsonValueKind.Object));
        Assert.That(doc.RootElement.GetProperty("quick").GetBoolean(), Is.True);
        Assert.That(doc.RootElement.GetProperty("failures").GetArrayLength(), Is.Zero, doc.RootElement.GetProperty("failures").ToString());
    }

    [Test]
    public void BenchJsonQuick_RuntimeAndImg_HaveEveryRatioLine()
    {
        using var doc = JsonDocument.Parse(_stdout);
        var results = Results(doc);
        AssertMeasured(results, "runtime: null terminator, 1 frontend, qd 32, 4 KiB reads");
        AssertMeasured(results, "runtime: null terminator, 4 frontends round-robin, qd 32 each");
        AssertMeasured(results, "runtime: mem terminator, 4 KiB writes (data copied)");
        AssertMeasured(results, "runtime: mem terminator, 4 KiB reads (data copied)");
        AssertMeasured(results, "img vs raw: 4 KiB random read, qd 32");
        AssertMeasured(results, "img vs raw: 4 KiB random write, qd 32");
        AssertMeasured(results, "img vs its storage file's own calls: 4 KiB random read, qd 32");
        AssertMeasured(results, "img vs its storage file's own calls: 4 KiB random write, qd 32");
        Assert.That(results, Contains.Key("runtime: bytes allocated per request (steady state)"));
        Assert.That(results["runtime: bytes allocated per request (steady state)"].GetProperty("ours").GetDouble(), Is.GreaterThanOrEqualTo(0));
    }

    [Test]
    public void BenchJsonQuick_Emulator_EveryModeAndFrontendCountMeasuredAgainstTheHarness()
    {
        using var doc = JsonDocument.Parse(_stdout);
        var results = Results(doc);
        double ceiling = results["runtime: mem terminator, 4 KiB reads (data copied)"].GetProperty("ours").GetDouble();
        foreach (var mode in new[] { "threaded", "deterministic, one thread" })
        {
            foreach (var fronts in new[] { "1 frontend", "4 frontends" })
            {
                var name = $"emulator ({mode}): mem terminator, {fronts}, qd 32 each, 4 KiB reads";
                AssertMeasured(results, name);
                Assert.That(results[name].GetProperty("theirs").GetDouble(), Is.EqualTo(ceiling), $"{name}: the baseline is the harness's mem-terminator read rate");
            }
        }
        const string alloc = "emulator: bytes allocated per request on the tap's loop thread (steady state)";
        Assert.That(results, Contains.Key(alloc));
        Assert.That(results[alloc].GetProperty("ours").GetDouble(), Is.GreaterThanOrEqualTo(0));
    }

    [Test]
    public void BenchOnly_UnknownGroup_ExitsTwoNamingItAndTheGroups()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(["bench", "--quick", "--only", "img,warp"], stdout, stderr);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1));
        Assert.That(lines[0], Does.Contain("'warp'").And.Contain(string.Join(", ", BlkTap.Bench.BenchSuite.Groups.Select(g => g.Name))));
        Assert.That(BlkTap.Bench.BenchSuite.Groups.Select(g => g.Name), Is.SupersetOf(new[] { "runtime", "emulator", "grants", "img", "nbd", "cow", "qcow2", "replay" }));
        Assert.That(stdout.ToString(), Is.Empty);
    }

    [Test]
    public void BenchOnly_WithResultsPage_ExitsTwo()
    {
        var stderr = new StringWriter();
        int code = CliApp.Run(["bench", "--quick", "--only", "img", "--results", Path.Combine(_dir, "partial.md")], new StringWriter(), stderr);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(stderr.ToString(), Does.Contain("--results"));
        Assert.That(File.Exists(Path.Combine(_dir, "partial.md")), Is.False);
    }

    [Test]
    public void BenchOnly_Emulator_RunsItWithItsRuntimeBaselineAndNothingElse()
    {
        var stdout = new StringWriter();
        int code = CliApp.Run(["bench", "--quick", "--json", "--only", "emulator"], stdout, new StringWriter());
        Assert.That(code, Is.EqualTo(CliApp.Ok));
        using var doc = JsonDocument.Parse(stdout.ToString());
        var names = Results(doc).Keys.ToList();
        Assert.That(names.Where(n => n.StartsWith("emulator", StringComparison.Ordinal)).Count(), Is.EqualTo(5));
        Assert.That(names.All(n => n.StartsWith("emulator", StringComparison.Ordinal) || n.StartsWith("runtime", StringComparison.Ordinal)), Is.True, string.Join("; ", names));
        AssertMeasured(Results(doc), "emulator (threaded): mem terminator, 1 frontend, qd 32 each, 4 KiB reads");
    }

    [Test]
    public void BenchJsonQuick_NbdExport_HasALinePerPeerAndJob()
    {
        using var doc = JsonDocument.Parse(_stdout);
        var results = Results(doc);
        bool fio = Peers.Find("fio") != null;
        if (Peers.Required) { Peers.Require("fio"); Peers.Require("nbdkit"); Peers.Require("qemu-nbd"); Peers.Require("gcc"); }
        foreach (var job in NbdJobs)
        {
            foreach (var (peer, program) in new[] { ("nbdkit", "nbdkit"), ("qemu-nbd", "qemu-nbd") })
            {
                foreach (var name in new[] { $"nbd export vs {peer}: {job}", $"nbd CPU per request vs {peer}: {job}" })
                {
                    Assert.That(results, Contains.Key(name));
                    if (fio && Peers.Find(program) != null) AssertMeasured(results, name);
                    else Assert.That(results[name].GetProperty("theirs").ValueKind, Is.EqualTo(JsonValueKind.Null), $"{name}: a missing peer is n/a");
                }
            }
            // The reference C server, compiled with gcc in the run: its CPU per request is measured like a peer's.
            var minimal = $"nbd CPU per request vs a minimal C server: {job}";
            Assert.That(results, Contains.Key(minimal));
            if (fio && Peers.Find("gcc") != null) AssertMeasured(results, minimal);
            else Assert.That(results[minimal].GetProperty("theirs").ValueKind, Is.EqualTo(JsonValueKind.Null), $"{minimal}: without gcc it is n/a");
            // The nbdkit CPU line says what share of nbdkit's CPU the C server used in the same run.
            var kitCpu = results[$"nbd CPU per request vs nbdkit: {job}"];
            if (kitCpu.GetProperty("theirs").ValueKind == JsonValueKind.Number && results[minimal].GetProperty("theirs").ValueKind == JsonValueKind.Number)
            {
                double share = results[minimal].GetProperty("theirs").GetDouble() / kitCpu.GetProperty("theirs").GetDouble();
                Assert.That(kitCpu.GetProperty("note").GetString(),
                    Does.EndWith(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the minimal C server used {share:F2} of nbdkit's CPU per request in this run")));
            }
        }
    }

    [Test]
    public void BenchJsonQuick_CowAndReplay_AreMeasuredOrSayWhyNot()
    {
        using var doc = JsonDocument.Parse(_stdout);
        var results = Results(doc);
        foreach (var job in new[] { NbdJobs[1], NbdJobs[0] })
        {
            var name = $"cow vs best qcow2 overlay: {job}";
            Assert.That(results, Contains.Key(name));
            if (Peers.Find("fio") != null && Peers.Find("qemu-nbd") != null) AssertMeasured(results, name);
            else Assert.That(results[name].GetProperty("note").GetString(), Does.Contain("not"), "a skipped line says why");
        }
        foreach (var replay in new[] { "replay: native trace, --timing fast, mem terminator", "replay: native trace, --timing fast, img on /dev/shm" })
        {
            Assert.That(results, Contains.Key(replay));
            AssertMeasured(results, replay);
            Assert.That(results[replay].GetProperty("note").GetString(), Does.Contain("B/req"), "the replay lines keep the bytes per request visible");
        }
        const string bytes = "replay: bytes allocated per request (mem, the whole verb)";
        Assert.That(results, Contains.Key(bytes));
        Assert.That(results[bytes].GetProperty("ours").GetDouble(), Is.GreaterThan(0), "the whole verb allocates something (the trace reader, the disk)");
    }

    [Test]
    public void BenchJsonQuick_Qcow2_FourLinesAgainstQemuNbdMeasuredOrSayWhyNot()
    {
        using var doc = JsonDocument.Parse(_stdout);
        var results = Results(doc);
        if (Peers.Required) { Peers.Require("fio"); Peers.Require("qemu-nbd"); Peers.Require("qemu-img"); }
        foreach (var job in new[] { "4 KiB randwrite to fresh clusters, iodepth 32", "4 KiB randwrite to allocated clusters, iodepth 32", NbdJobs[0], NbdJobs[2] })
        {
            var name = $"qcow2 vs qemu-nbd: {job}";
            Assert.That(results, Contains.Key(name));
            if (Peers.Find("fio") != null && Peers.Find("qemu-nbd") != null && Peers.Find("qemu-img") != null) AssertMeasured(results, name);
            else Assert.That(results[name].GetProperty("note").GetString(), Does.Contain("not"), "a skipped line says why");
        }
    }

    [Test]
    public void BenchResults_ExistingPage_RegeneratedWithEveryLineAndNotesKept()
    {
        using var doc = JsonDocument.Parse(_stdout);
        var page = File.ReadAllText(_page);
        Assert.That(page, Does.Not.Contain("| stale | row |"));
        Assert.That(page, Does.Contain(NotesMarker));
        Assert.That(page, Does.Contain("| cores |").And.Contain("| kernel |").And.Contain("| .NET |").And.Contain("blktap bench --quick --results"));
        foreach (var name in Results(doc).Keys) Assert.That(page, Does.Contain($"| {name} |"), $"row for '{name}'");
    }

    [Test]
    public void Bench_ResultsInMissingDirectory_ExitsTwoWithOneLine()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(["bench", "--quick", "--results", Path.Combine(_dir, "no", "such", "dir", "R.md")], stdout, stderr);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1));
        Assert.That(lines[0], Does.StartWith("blktap: ").And.Contain("does not exist"));
        Assert.That(stdout.ToString(), Is.Empty);
    }
}
