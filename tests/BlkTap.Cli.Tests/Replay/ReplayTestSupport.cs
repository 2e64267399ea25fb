using BlkTap.Cli;
using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Replay;

/// <summary>A temporary directory per test and the CLI run in-process.</summary>
public abstract class ReplayTestBase
{
    protected string Dir { get; private set; } = "";

    [SetUp]
    public void CreateDir() => Dir = Directory.CreateTempSubdirectory("blktap-replay-").FullName;

    [TearDown]
    public void DeleteDir()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }

    protected string PathOf(string name) => Path.Combine(Dir, name);

    /// <summary>Runs <c>blktap ARGS</c> in-process; returns the exit code, stdout and stderr.</summary>
    protected static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>Captures a deterministic verified workload of <paramref name="frontends"/> guests through <c>dump:trace=</c>.</summary>
    protected string Capture(string name, int seed, int ops = 120, int frontends = 2)
    {
        var path = PathOf(name);
        var (code, _, err) = Cli("run", "--tap", $"dump:trace={path},quiet=true,hash=true", "--tap", "mem:size=8M",
            "--workload", $"random:ops={ops},qd=8,max-sectors=64", "--frontends", frontends.ToString(), "--deterministic", "--seed", seed.ToString());
        Assert.That(code, Is.Zero, err);
        return path;
    }

    /// <summary>The request sequence of each session (sessions renumbered in order of first appearance).</summary>
    protected static List<List<(BlkifOperation Op, ulong Sector, uint Length)>> PerSession(string trace)
    {
        var index = new Dictionary<uint, int>();
        var result = new List<List<(BlkifOperation, ulong, uint)>>();
        foreach (var r in TraceFormats.Read(trace))
        {
            if (!index.TryGetValue(r.Session, out var i)) { index[r.Session] = i = result.Count; result.Add(new()); }
            result[i].Add((r.Operation, r.Sector, r.Length));
        }
        return result;
    }

    /// <summary>The whole sequence in file order, sessions renumbered, times left out.</summary>
    protected static List<(int Session, BlkifOperation Op, ulong Sector, uint Length, BlkifStatus Status)> Sequence(string trace)
    {
        var index = new Dictionary<uint, int>();
        var list = new List<(int, BlkifOperation, ulong, uint, BlkifStatus)>();
        foreach (var r in TraceFormats.Read(trace))
        {
            if (!index.TryGetValue(r.Session, out var i)) index[r.Session] = i = index.Count;
            list.Add((i, r.Operation, r.Sector, r.Length, r.Status));
        }
        return list;
    }
}
