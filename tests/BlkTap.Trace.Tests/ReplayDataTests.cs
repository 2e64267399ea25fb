using BlkTap.Trace;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Trace.Tests;

public class ReplayDataTests
{
    [FsCheck.NUnit.Property(MaxTest = 200)]
    public bool Check_FilledBuffer_RecoversSectorAndSequenceOfEverySector(ulong sector, ulong seq, byte sectors)
    {
        var n = sectors % 16 + 1;
        sector = Math.Min(sector, ulong.MaxValue - (ulong)n);
        var buf = new byte[n * 512];
        ReplayData.Fill(buf, sector, seq);
        for (var i = 0; i < n; i++)
        {
            var got = ReplayData.Check(buf.AsSpan(i * 512, 512));
            if (got != new ReplaySector(ReplaySectorKind.Written, sector + (ulong)i, seq)) return false;
        }
        return true;
    }

    [FsCheck.NUnit.Property(MaxTest = 200)]
    public bool Check_AnySingleBitFlip_Unrecognized(ulong sector, ulong seq, ushort bit)
    {
        var buf = new byte[512];
        ReplayData.Fill(buf, sector, seq);
        var b = bit % (512 * 8);
        buf[b / 8] ^= (byte)(1 << (b % 8));
        // A flip in the sector or sequence field gives another valid-looking header whose stream no longer matches.
        return ReplayData.Check(buf).Kind == ReplaySectorKind.Unrecognized;
    }

    [Test]
    public void Fill_DistinctSectorsAndSequences_DistinctContent()
    {
        var a = new byte[512]; var b = new byte[512]; var c = new byte[512];
        ReplayData.Fill(a, 7, 1);
        ReplayData.Fill(b, 8, 1);
        ReplayData.Fill(c, 7, 2);
        Assert.That(a, Is.Not.EqualTo(b));
        Assert.That(a, Is.Not.EqualTo(c));
        Assert.That(ReplayData.Check(new byte[512]).Kind, Is.EqualTo(ReplaySectorKind.Zero));
        Assert.Throws<ArgumentException>(() => ReplayData.Fill(new byte[100], 0, 1));
        Assert.Throws<ArgumentException>(() => ReplayData.Check(new byte[1024]));
    }
}

public class ReplayVerifierTests
{
    private const int DiskSectors = 64;

    private enum Kind { Write, Discard, Read }

    private static readonly Gen<(Kind Kind, int Sector, int Count)> OpGen =
        from kind in Gen.Frequency((4, Gen.Constant(Kind.Write)), (1, Gen.Constant(Kind.Discard)), (3, Gen.Constant(Kind.Read)))
        from sector in Gen.Choose(0, DiskSectors - 1)
        from count in Gen.Choose(1, 8)
        select (kind, sector, Math.Min(count, DiskSectors - sector));

    // Model: a byte-array disk. Discards zero the range when `zeroOnDiscard`, else keep the data.
    // A correct disk always verifies; a disk that lost (skipped) one write is caught when that write is read.
    [FsCheck.NUnit.Property(MaxTest = 200)]
    public Property Verify_AgainstByteArrayDisk_AcceptsCorrectAndCatchesLostWrite()
    {
        var gen = from ops in Gen.ListOf(OpGen)
                  from zeroOnDiscard in ArbMap.Default.GeneratorFor<bool>()
                  from lost in Gen.Choose(0, 1000)
                  select (ops, zeroOnDiscard, lost);
        return Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var (ops, zeroOnDiscard, lost) = t;
            var good = new byte[DiskSectors * 512];
            var faulty = new byte[DiskSectors * 512];
            var verifier = new ReplayVerifier();
            ulong seq = 0;
            var writes = ops.Count(o => o.Kind == Kind.Write);
            var lostSeq = writes == 0 ? 0UL : (ulong)(lost % writes) + 1;
            var goodOk = true;
            var faultCaughtOrUnobservable = true;
            var lostSectors = new HashSet<int>();
            // Lost sectors that a keep-data discard covered: the faulty disk may now hold acceptable
            // zeros (unobservable) or stale data (reported): either answer is right for them.
            var ambiguous = new HashSet<int>();
            foreach (var (kind, sector, count) in ops)
            {
                var span = new Range(sector * 512, (sector + count) * 512);
                switch (kind)
                {
                    case Kind.Write:
                        seq++;
                        ReplayData.Fill(good.AsSpan(span), (ulong)sector, seq);
                        if (seq != lostSeq) ReplayData.Fill(faulty.AsSpan(span), (ulong)sector, seq);
                        for (var s = sector; s < sector + count; s++)
                        {
                            if (seq == lostSeq) lostSectors.Add(s); else lostSectors.Remove(s);
                            ambiguous.Remove(s);
                        }
                        verifier.RecordWrite((ulong)sector, (ulong)count, seq);
                        break;
                    case Kind.Discard:
                        if (zeroOnDiscard) { good.AsSpan(span).Clear(); faulty.AsSpan(span).Clear(); }
                        // Zeroing makes both disks equal again; a discard that keeps data makes the loss ambiguous.
                        for (var s = sector; s < sector + count; s++)
                            if (lostSectors.Remove(s) && !zeroOnDiscard) ambiguous.Add(s);
                        verifier.RecordDiscard((ulong)sector, (ulong)count);
                        break;
                    case Kind.Read:
                        goodOk &= verifier.Verify((ulong)sector, good.AsSpan(span)) == null;
                        var touchesLost = Enumerable.Range(sector, count).Any(lostSectors.Contains);
                        if (touchesLost)
                        {
                            var m = verifier.Verify((ulong)sector, faulty.AsSpan(span));
                            faultCaughtOrUnobservable &= m is { } mm && (lostSectors.Contains((int)mm.Sector) || ambiguous.Contains((int)mm.Sector));
                        }
                        break;
                }
            }
            return goodOk && faultCaughtOrUnobservable;
        });
    }

    [Test]
    public void Verify_MisdirectedWrite_ReportsSectorAndExpectation()
    {
        var v = new ReplayVerifier();
        var data = new byte[1024];
        ReplayData.Fill(data, 100, 9); // the disk put sector 100..101 content at 200..201
        v.RecordWrite(200, 2, 9);
        var m = v.Verify(200, data);
        Assert.That(m, Is.Not.Null);
        Assert.That(m!.Value.Sector, Is.EqualTo(200));
        Assert.That(m.Value.ToString(), Is.EqualTo("sector 200: expected write #9 of sector 200, found write #9 of sector 100"));
        Assert.That(v.LastWrite(201), Is.EqualTo(9));
        Assert.That(v.LastWrite(5_000_000_000), Is.Zero);
        Assert.That(v.TrackedSectors, Is.EqualTo(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => v.RecordWrite(0, 1, 0));
    }
}
