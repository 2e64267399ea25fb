using BlkTap.Cli.Commands;
using BlkTap.Emulator.PowerCut;
using BlkTap.Examples;
using BlkTap.Storage;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.PowerLoss;

/// <summary>
/// The power-cut simulation of the qcow2 chains <c>blktap fuzz --power-cuts</c> adds (<see cref="Qcow2PowerCutChains"/>):
/// cuts hold every invariant and leave images our checker finds no error in; a lying disk and a qcow2 file whose
/// syncs are skipped every other time are caught.
/// </summary>
public class Qcow2PowerCutSimulationTests
{
    private static PowerCutOptions Options(int cuts) => new()
    {
        Seed = 20, Cuts = cuts, Registry = ExampleTaps.CreateRegistry(), ExtraChains = Qcow2PowerCutChains.All, Chains = ["qcow2", "qcow2+qcow2"],
    };

    [Test]
    public void Run_ThreeHundredQcow2Cuts_NoViolationAndBothChainsAndEveryVariantCut()
    {
        var report = PowerCutSimulation.Run(Options(300));
        Assert.That(report.Failures, Is.Empty, string.Join("\n", report.Failures));
        Assert.That(report.Violations, Is.Zero);
        Assert.That(report.ByChain.Keys, Is.EquivalentTo(new[] { "qcow2", "qcow2+qcow2" }));
        Assert.That(report.ByChain.Values, Has.All.GreaterThan(100));
        Assert.That(report.ByVariant.Keys, Is.EquivalentTo(Enum.GetValues<PowerCutVariant>()));
        Assert.That(report.CompletedFlushes, Is.GreaterThan(100));
        Assert.That(report.TornWrites, Is.GreaterThan(10));
        Assert.That(report.SectorsChecked, Is.EqualTo(300L * 256));
    }

    [Test]
    public void Run_DefaultChainsWithQcow2_CutsAllSixChains()
    {
        var options = Options(60);
        options.Chains = null;
        var report = PowerCutSimulation.Run(options);
        Assert.That(report.Violations, Is.Zero, string.Join("\n", report.Failures));
        Assert.That(report.ByChain.Keys, Is.EquivalentTo(PowerCutSimulation.ChainNames.Concat(["qcow2", "qcow2+qcow2"])));
    }

    [Test]
    public void Run_Qcow2OnALyingDisk_ReportsLostAfterFlush()
    {
        var options = Options(100);
        options.LyingFlushes = true;
        var report = PowerCutSimulation.Run(options);
        Assert.That(report.LostAfterFlush, Is.GreaterThan(0));
        Assert.That(report.Failures.Select(f => f.Chain).Distinct(), Is.EquivalentTo(new[] { "qcow2", "qcow2+qcow2" }));
    }

    [Test]
    public void Run_Qcow2SyncsSkippedEveryOtherTime_ReportsViolations()
    {
        var options = Options(300);
        options.WrapStorage = s => new EveryOtherSyncSkipped(s);
        var report = PowerCutSimulation.Run(options);
        Assert.That(report.Violations, Is.GreaterThan(0), "metadata durable before the data (or refcounts) it needs must be caught");
    }

    /// <summary>A fault: the top image's fsyncs are skipped every other time, so the flush order no longer holds.</summary>
    private sealed class EveryOtherSyncSkipped(IStorageProvider inner) : IStorageProvider
    {
        public bool FileExists(string path) => inner.FileExists(path);
        public bool DirectoryExists(string path) => inner.DirectoryExists(path);
        public IStorageFile Open(string path, StorageOpenOptions options) => Wrap(inner.Open(path, options));
        public IStorageFile Create(string path) => Wrap(inner.Create(path));
        public void Move(string from, string to) => inner.Move(from, to);
        public void Delete(string path) => inner.Delete(path);
        public void SyncDirectory(string directory) => inner.SyncDirectory(directory);

        private static IStorageFile Wrap(IStorageFile f) => f.Path.EndsWith("top.qcow2", StringComparison.Ordinal) ? new File(f) : f;

        private sealed class File(IStorageFile inner) : IStorageFile
        {
            private int _flushes;
            public string Path => inner.Path;
            public bool ReadOnly => inner.ReadOnly;
            public long Length => inner.Length;
            public int Read(Span<byte> buffer, long offset) => inner.Read(buffer, offset);
            public void Write(ReadOnlySpan<byte> data, long offset) => inner.Write(data, offset);
            public void SetLength(long length) => inner.SetLength(length);
            public void Flush() { if (_flushes++ % 2 == 1) inner.Flush(); }
            public BlkifStatus PunchHole(long offset, long length) => inner.PunchHole(offset, length);
            public void Dispose() => inner.Dispose();
        }
    }
}
