using System.Text.Json;
using BlkTap.Examples;
using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Json;

/// <summary>Every reporting verb's <c>--json</c>: stdout is exactly one JSON object whose figures are the real ones.</summary>
public class JsonOutputTests
{
    private string _dir = "";

    [SetUp]
    public void CreateDir() => _dir = Directory.CreateTempSubdirectory("blktap-json-").FullName;

    [TearDown]
    public void DeleteDir()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>Runs <c>blktap ARGS</c> in process, asserts the exit code and that stdout is one JSON object, and returns it.</summary>
    internal static JsonElement Json(int expectedExit, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run(args, stdout, stderr);
        var text = stdout.ToString();
        Assert.That(rc, Is.EqualTo(expectedExit), $"blktap {string.Join(' ', args)}\nstdout: {text}\nstderr: {stderr}");
        Assert.That(text.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), "one line of JSON on stdout: " + text);
        using var doc = JsonDocument.Parse(text); // throws unless the whole of stdout is one JSON value
        Assert.That(doc.RootElement.ValueKind, Is.EqualTo(JsonValueKind.Object));
        Assert.That(stderr.ToString(), Does.Not.Contain("\r"), "no hand-written progress when stderr is not a terminal");
        return doc.RootElement.Clone();
    }

    [Test]
    public void Taps_Json_ListsEveryTapWithKindAndOptions()
    {
        var j = Json(0, "taps", "--json");
        var taps = j.GetProperty("taps").EnumerateArray().ToList();
        Assert.That(taps.Select(t => t.GetProperty("name").GetString()), Is.EquivalentTo(ExampleTaps.CreateRegistry().Factories.Select(f => f.Name)));
        var mem = taps.Single(t => t.GetProperty("name").GetString() == "mem");
        Assert.That(mem.GetProperty("kind").GetString(), Is.EqualTo("terminator"));
        Assert.That(mem.GetProperty("origin").GetString(), Is.EqualTo("built-in"));
        Assert.That(mem.GetProperty("options").EnumerateArray().Select(o => o.GetProperty("key").GetString()), Does.Contain("size"));
        var cow = taps.Single(t => t.GetProperty("name").GetString() == "cow");
        Assert.That(cow.GetProperty("kind").GetString(), Is.EqualTo("interposer"));
        Assert.That(cow.GetProperty("options").EnumerateArray().Single(o => o.GetProperty("key").GetString() == "overlay").GetProperty("required").GetBoolean(), Is.True);
    }

    [Test]
    public void Run_Json_RequestCountsEqualTheWorkload()
    {
        var j = Json(0, "run", "--tap", "dump:quiet=false", "--tap", "mem:size=8M", "--frontends", "3", "--workload", "random:ops=120,qd=4", "--deterministic", "--seed", "5", "--json");
        Assert.That(j.GetProperty("frontends").GetInt32(), Is.EqualTo(3));
        Assert.That(j.GetProperty("workload").GetProperty("ops_per_frontend").GetInt32(), Is.EqualTo(120));
        Assert.That(j.GetProperty("operations").GetInt64(), Is.EqualTo(360));
        var sessions = j.GetProperty("sessions").EnumerateArray().ToList();
        Assert.That(sessions, Has.Count.EqualTo(3));
        foreach (var s in sessions)
        {
            Assert.That(s.GetProperty("operations").GetInt64(), Is.EqualTo(120));
            long sum = s.GetProperty("reads").GetInt64() + s.GetProperty("writes").GetInt64() + s.GetProperty("flushes").GetInt64() + s.GetProperty("discards").GetInt64();
            Assert.That(sum, Is.EqualTo(120));
            Assert.That(s.GetProperty("mismatches").GetInt64(), Is.Zero);
        }
        // Every operation reached the tap (large ones as several requests), and dump (printing to stderr) saw them all.
        long tapRequests = j.GetProperty("tap_sessions").EnumerateArray().Sum(s => s.GetProperty("requests").GetInt64());
        Assert.That(tapRequests, Is.GreaterThanOrEqualTo(360));
        Assert.That(j.GetProperty("dump")[0].GetProperty("requests").GetInt64(), Is.EqualTo(tapRequests));
        Assert.That(j.GetProperty("ok").GetBoolean(), Is.True);
    }

    [Test]
    public void Demo_Json_TwoGuestsOfTwoThousandOperations()
    {
        var j = Json(0, "demo", "--json");
        Assert.That(j.GetProperty("chain").EnumerateArray().Select(c => c.GetString()!.Split(':')[0]), Is.EqualTo(new[] { "dump", "cow", "mem" }));
        Assert.That(j.GetProperty("operations").GetInt64(), Is.EqualTo(4000));
        Assert.That(j.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("operations").GetInt64()), Is.EqualTo(new long[] { 2000, 2000 }));
        Assert.That(j.GetProperty("ok").GetBoolean(), Is.True);
    }

    [Test]
    public void Fuzz_Json_CountsTheHostileRequestsAsked()
    {
        var j = Json(0, "fuzz", "--seed", "3", "--iterations", "300", "--fault-rounds", "2", "--power-cuts", "4", "--parallel", "1", "--json");
        Assert.That(j.GetProperty("seed").GetInt32(), Is.EqualTo(3));
        Assert.That(j.GetProperty("hostile_requests").GetInt64(), Is.GreaterThanOrEqualTo(300));
        Assert.That(j.GetProperty("hostile_kinds").EnumerateObject().Sum(k => k.Value.GetInt64()), Is.EqualTo(j.GetProperty("hostile_requests").GetInt64()));
        Assert.That(j.GetProperty("fault_rounds").GetInt32(), Is.EqualTo(2));
        Assert.That(j.GetProperty("power_cuts").GetInt32(), Is.EqualTo(4));
        Assert.That(j.GetProperty("violations").GetInt64(), Is.Zero);
        Assert.That(j.GetProperty("ok").GetBoolean(), Is.True);
    }

    [Test]
    public void Fuzz_OneRoundJson_SaysItHeld()
    {
        var j = Json(0, "fuzz", "--round", "42", "--round-size", "50", "--json");
        Assert.That(j.GetProperty("round").GetInt32(), Is.EqualTo(42));
        Assert.That(j.GetProperty("ok").GetBoolean(), Is.True);
        Assert.That(j.GetProperty("error").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }

    private string Capture(int frontends = 2, int ops = 100)
    {
        var trace = PathOf("cap.bt");
        Assert.That(CliApp.Run(["run", "--tap", $"dump:trace={trace},quiet=true", "--tap", "mem:size=8M", "--frontends", frontends.ToString(),
            "--workload", $"random:ops={ops}", "--deterministic"], new StringWriter(), new StringWriter()), Is.Zero);
        return trace;
    }

    [Test]
    public void TraceInfo_Json_CountsWhatTheTraceHolds()
    {
        var trace = Capture();
        var records = TraceFormats.Read(trace).ToList();
        var j = Json(0, "trace", "info", trace, "--json");
        Assert.That(j.GetProperty("format").GetString(), Is.EqualTo("native"));
        Assert.That(j.GetProperty("records").GetInt64(), Is.EqualTo(records.Count));
        Assert.That(j.GetProperty("sessions").GetInt32(), Is.EqualTo(2));
        Assert.That(j.GetProperty("dropped_records").GetInt64(), Is.Zero);
        var ops = j.GetProperty("operations");
        Assert.That(ops.EnumerateObject().Sum(o => o.Value.GetProperty("count").GetInt64()), Is.EqualTo(records.Count));
        Assert.That(ops.GetProperty("read").GetProperty("count").GetInt64(), Is.EqualTo(records.Count(r => r.Operation == BlkifOperation.Read)));
        Assert.That(ops.GetProperty("write").GetProperty("bytes").GetInt64(), Is.EqualTo(records.Where(r => r.Operation == BlkifOperation.Write).Sum(r => (long)r.Length)));
    }

    [Test]
    public void TraceExport_OutputFormatJson_ReportsTheRecordsWritten()
    {
        var trace = Capture();
        var text = PathOf("cap.txt");
        var j = Json(0, "trace", "export", trace, "--output-format", "text", "-o", text, "--json");
        Assert.That(j.GetProperty("records").GetInt64(), Is.EqualTo(TraceFormats.Read(trace).Count()));
        Assert.That(j.GetProperty("output_format").GetString(), Is.EqualTo("text"));
        Assert.That(j.GetProperty("input_format").GetString(), Is.EqualTo("native"));
        // The old name of the option still works, and the text form reads back with --input-format.
        var again = Json(0, "trace", "export", text, "--format", "native", "--input-format", "text", "-o", PathOf("back.bt"), "--json");
        Assert.That(again.GetProperty("records").GetInt64(), Is.EqualTo(j.GetProperty("records").GetInt64()));
    }

    [Test]
    public void CowCommit_Json_ReportsTheSectorsFolded()
    {
        var basePath = PathOf("base.raw");
        using (var f = File.Create(basePath)) f.SetLength(8 << 20);
        var overlay = PathOf("o.cow");
        Assert.That(CliApp.Run(["run", "--tap", $"cow:overlay={overlay}", "--tap", $"img:path={basePath}", "--frontends", "1", "--workload", "random:ops=60,discards=0", "--deterministic"],
            new StringWriter(), new StringWriter()), Is.Zero);
        var j = Json(0, "cow", "commit", overlay, "--base", basePath, "--json");
        long sectors = j.GetProperty("sectors").GetInt64();
        Assert.That(sectors, Is.GreaterThan(0));
        Assert.That(j.GetProperty("bytes").GetInt64(), Is.EqualTo(sectors * 512));
        // The overlay is empty now: a second commit folds nothing.
        Assert.That(Json(0, "cow", "commit", overlay, "--base", basePath, "--json").GetProperty("sectors").GetInt64(), Is.Zero);
    }

    [Test]
    public void Qcow2CreateAndCheck_Json_ReportTheImage()
    {
        var image = PathOf("d.qcow2");
        var made = Json(0, "qcow2", "create", image, "10M", "--cluster-size", "64K", "--json");
        Assert.That(made.GetProperty("size_bytes").GetInt64(), Is.EqualTo(10L << 20));
        Assert.That(made.GetProperty("cluster_size").GetInt32(), Is.EqualTo(65536));
        Assert.That(made.GetProperty("backing_file").ValueKind, Is.EqualTo(JsonValueKind.Null));
        var check = Json(0, "qcow2", "check", image, "--json");
        Assert.That(check.GetProperty("clean").GetBoolean(), Is.True);
        Assert.That(check.GetProperty("error_count").GetInt32(), Is.Zero);
        Assert.That(check.GetProperty("leaked_clusters").GetInt64(), Is.Zero);
    }
}
