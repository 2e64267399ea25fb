using System.Text.Json;
using BlkTap.Cli;
using BlkTap.Emulator.PowerCut;
using BlkTap.Examples;
using BlkTap.Storage;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.PowerLoss;

/// <summary>
/// The power-cut simulation of img, aio and cow: CI's 500 cuts hold every invariant, and the checker does report a disk
/// that loses synced data and a cow whose map can reach the disk before its data.
/// </summary>
public class PowerCutSimulationTests
{
    private static PowerCutOptions Options(int cuts, int seed = 1) => new() { Seed = seed, Cuts = cuts, Registry = ExampleTaps.CreateRegistry() };

    [Test]
    public void Run_FiveHundredCuts_NoViolationNoLossAndEveryChainAndVariantCut()
    {
        var report = PowerCutSimulation.Run(Options(500));
        Assert.That(report.Failures, Is.Empty, string.Join("\n", report.Failures));
        Assert.That(report.Violations, Is.Zero);
        Assert.That(report.LostAfterFlush, Is.Zero);
        Assert.That(report.PowerCuts, Is.EqualTo(500));
        Assert.That(report.ByChain.Keys, Is.EquivalentTo(PowerCutSimulation.ChainNames));
        Assert.That(report.ByChain.Values, Has.All.GreaterThan(50));
        Assert.That(report.ByVariant.Keys, Is.EquivalentTo(Enum.GetValues<PowerCutVariant>()));
        Assert.That(report.AcknowledgedWrites, Is.GreaterThan(500));
        Assert.That(report.CompletedFlushes, Is.GreaterThan(100));
        Assert.That(report.TornWrites, Is.GreaterThan(10));
        Assert.That(report.CutsWithRequestsInFlight, Is.GreaterThan(100));
        Assert.That(report.SectorsChecked, Is.EqualTo(500L * 256));
    }

    [Test]
    public void Run_StorageLiesAboutFlushes_ReportsLostAfterFlushWithAReplayableCut()
    {
        var options = Options(100);
        options.LyingFlushes = true;
        var report = PowerCutSimulation.Run(options);
        Assert.That(report.LostAfterFlush, Is.GreaterThan(0));
        Assert.That(report.Violations, Is.GreaterThanOrEqualTo(report.LostAfterFlush));
        var first = report.Failures[0];
        Assert.That(first.Description, Does.Contain("lost after flush"));
        var again = PowerCutSimulation.RunCut(options, first.CutSeed);
        Assert.That(again, Is.Not.Null, "the failing cut replays from its seed");
        Assert.That((again!.Chain, again.Variant), Is.EqualTo((first.Chain, first.Variant)));
        Assert.That(report.Failures.Select(f => f.Chain).Distinct(), Is.EquivalentTo(PowerCutSimulation.ChainNames), "every chain's losses are seen");
    }

    [Test]
    public void Run_CowMapCanReachTheDiskBeforeItsData_ReportsViolations()
    {
        var options = Options(200);
        options.Chains = ["cow+img", "cow+aio"];
        options.WrapStorage = s => new OverlayDataSyncSkipped(s);
        var report = PowerCutSimulation.Run(options);
        Assert.That(report.Violations, Is.GreaterThan(0), "a map bit without its data must be caught");
        Assert.That(report.Failures.Select(f => f.Description), Has.Some.Contains("holds zeroes"));
    }

    [Test]
    public void FuzzCommand_PowerCutsJson_PrintsOneObjectWithTheCountsAndExitsZero()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run(["fuzz", "--seed", "1", "--iterations", "40", "--fault-rounds", "2", "--power-cuts", "40", "--json"], stdout, stderr);
        Assert.That(rc, Is.EqualTo(0), stdout + "\n" + stderr);
        var lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), "exactly one JSON object");
        using var doc = JsonDocument.Parse(lines[0]);
        var root = doc.RootElement;
        Assert.That(root.GetProperty("power_cuts").GetInt32(), Is.EqualTo(40));
        Assert.That(root.GetProperty("violations").GetInt64(), Is.Zero);
        Assert.That(root.GetProperty("lost_after_flush").GetInt64(), Is.Zero);
        Assert.That(root.GetProperty("hostile_requests").GetInt64(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("fault_rounds").GetInt32(), Is.EqualTo(2));
    }

    [Test]
    public void FuzzCommand_PowerCutReplay_NamesTheChainAndVariantAndExitsZero()
    {
        var stdout = new StringWriter();
        int seed = PowerCutSimulation.CutSeed(1, 3);
        int rc = CliApp.Run(["fuzz", "--power-cut", seed.ToString()], stdout, new StringWriter());
        Assert.That(rc, Is.EqualTo(0), stdout.ToString());
        Assert.That(stdout.ToString(), Does.Match($"power cut {seed} \\(chain (img|aio|cow\\+img|cow\\+aio|qcow2|qcow2\\+qcow2), variant (synced-only|random-subset|torn-write)\\): every write flushed"));
    }

    /// <summary>
    /// A fault for the checker: the overlay's syncs are skipped except right after a map write, so its data becomes
    /// durable only together with the map, as if cow wrote the map before syncing the data.
    /// </summary>
    private sealed class OverlayDataSyncSkipped(IStorageProvider inner) : IStorageProvider
    {
        public bool FileExists(string path) => inner.FileExists(path);
        public bool DirectoryExists(string path) => inner.DirectoryExists(path);
        public IStorageFile Open(string path, StorageOpenOptions options) => Wrap(inner.Open(path, options));
        public IStorageFile Create(string path) => Wrap(inner.Create(path));
        public void Move(string from, string to) => inner.Move(from, to);
        public void Delete(string path) => inner.Delete(path);
        public void SyncDirectory(string directory) => inner.SyncDirectory(directory);

        private static IStorageFile Wrap(IStorageFile f) => f.Path.EndsWith(".cow", StringComparison.Ordinal) ? new File(f) : f;

        private sealed class File(IStorageFile inner) : IStorageFile
        {
            private bool _mapWritten;
            public string Path => inner.Path;
            public bool ReadOnly => inner.ReadOnly;
            public long Length => inner.Length;
            public int Read(Span<byte> buffer, long offset) => inner.Read(buffer, offset);
            public void Write(ReadOnlySpan<byte> data, long offset)
            {
                inner.Write(data, offset);
                _mapWritten |= offset is >= 4096 and < 8192; // the map of a 4K-cluster overlay of a small disk
            }
            public void SetLength(long length) => inner.SetLength(length);
            public void Flush()
            {
                if (!_mapWritten) return;
                _mapWritten = false;
                inner.Flush();
            }
            public BlkifStatus PunchHole(long offset, long length) => inner.PunchHole(offset, length);
            public void Dispose() => inner.Dispose();
        }
    }
}
