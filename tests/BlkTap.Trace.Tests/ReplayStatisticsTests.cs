using BlkTap.Trace;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class ReplayStatisticsTests
{
    private static ReplayOutcome Outcome(long index, BlkifOperation op, ulong sector, uint length, BlkifStatus status = BlkifStatus.Okay,
        ulong writeSequence = 0, int frontend = 0, BlkifStatus expected = BlkifStatus.Okay, bool skipped = false) =>
        new(index, frontend, op, sector, length, expected, status, skipped, writeSequence, 1000);

    private static byte[] Written(ulong sector, ulong sequence, int sectors = 8)
    {
        var data = new byte[sectors * 512];
        ReplayData.Fill(data, sector, sequence);
        return data;
    }

    [Test]
    public void Record_ReadOfLastWrite_CountsAndVerifies()
    {
        var s = new ReplayStatistics(verify: true, sharedDisk: true, initiallyZero: true, frontends: 2);
        s.Record(Outcome(0, BlkifOperation.Write, 16, 4096, writeSequence: 1, frontend: 0), default);
        s.Record(Outcome(1, BlkifOperation.Read, 16, 4096, frontend: 1), Written(16, 1));
        Assert.That(s.Completed, Is.EqualTo(new long[] { 1, 1, 0, 0, 0 }));
        Assert.That(s.Bytes, Is.EqualTo(new long[] { 4096, 4096, 0, 0, 0 }));
        Assert.That(s.ReadsChecked, Is.EqualTo(1));
        Assert.That(s.Passed, Is.True);
        Assert.That(s.LatencyUs(0, 50), Is.EqualTo(1.0).Within(0.01));
    }

    [Test]
    public void Record_StaleReadOnSharedDisk_Mismatch()
    {
        var s = new ReplayStatistics(verify: true, sharedDisk: true, initiallyZero: true, frontends: 2);
        s.Record(Outcome(0, BlkifOperation.Write, 16, 4096, writeSequence: 1), default);
        s.Record(Outcome(1, BlkifOperation.Write, 16, 4096, writeSequence: 2, frontend: 1), default);
        s.Record(Outcome(2, BlkifOperation.Read, 16, 4096), Written(16, 1));
        Assert.That(s.Mismatches, Is.EqualTo(1));
        Assert.That(s.FirstMismatches.Single(), Does.StartWith("request #2 (read sector 16+8 on frontend 0): sector 16: expected write #2"));
        Assert.That(s.Passed, Is.False);
    }

    [Test]
    public void Record_PerFrontendDisks_EachFrontendItsOwnModel()
    {
        var s = new ReplayStatistics(verify: true, sharedDisk: false, initiallyZero: true, frontends: 2);
        s.Record(Outcome(0, BlkifOperation.Write, 16, 4096, writeSequence: 1, frontend: 0), default);
        s.Record(Outcome(1, BlkifOperation.Read, 16, 4096, frontend: 1), new byte[4096]); // frontend 1's disk was never written
        Assert.That(s.Mismatches, Is.Zero);
        Assert.That(s.ReadsChecked, Is.EqualTo(1));
    }

    [Test]
    public void Record_UnexpectedFailure_ErrorNamed()
    {
        var s = new ReplayStatistics(verify: false, sharedDisk: true, initiallyZero: true, frontends: 1);
        s.Record(Outcome(5, BlkifOperation.FlushDiskCache, 0, 0, BlkifStatus.Error), default);
        s.Record(Outcome(6, BlkifOperation.Write, 0, 512, BlkifStatus.Error, expected: BlkifStatus.Error), default);
        Assert.That(s.Failed, Is.EqualTo(new long[] { 0, 1, 0, 1, 0 }));
        Assert.That(s.Errors, Is.EqualTo(1));
        Assert.That(s.FirstErrors.Single(), Is.EqualTo("request #5 (flush sector 0+0 on frontend 0): Error"));
    }

    [Test]
    public void Record_SkippedOrNotSupported_CountedAsSkipped()
    {
        var s = new ReplayStatistics(verify: true, sharedDisk: true, initiallyZero: true, frontends: 1);
        s.Record(Outcome(0, BlkifOperation.Discard, 0, 4096, skipped: true), default);
        s.Record(Outcome(1, BlkifOperation.Discard, 0, 4096, BlkifStatus.NotSupported), default);
        Assert.That(s.Skipped[ReplayStatistics.OperationIndex(BlkifOperation.Discard)], Is.EqualTo(2));
        Assert.That(s.Completed.Sum(), Is.Zero);
        Assert.That(s.MaxLatencyUs(4), Is.Zero);
        Assert.That(s.Passed, Is.True);
    }

    [Test]
    public void Record_VerifyOff_ReadsNotChecked()
    {
        var s = new ReplayStatistics(verify: false, sharedDisk: true, initiallyZero: true, frontends: 1);
        s.Record(Outcome(0, BlkifOperation.Read, 0, 512), Written(99, 9, 1));
        Assert.That(s.ReadsChecked, Is.Zero);
        Assert.That(s.Passed, Is.True);
    }
}
