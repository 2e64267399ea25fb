using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Examples.Tests.Contracts;

/// <summary>
/// What every terminator promises, checked through the emulator rig (<see cref="EmulatorRig"/>: guests with blkfronts,
/// dom0 running the chain behind the xenbus backend): the size at attach; writes read back; a fresh disk reads zeros;
/// out-of-range requests fail and change nothing; flush succeeds; discard works or is refused as advertised; a read-only
/// disk refuses writes and changes nothing; two sessions sharing the disk see each other's writes.
/// </summary>
/// <remarks>
/// A subclass gives the chain ending in its terminator (<see cref="Chain"/>: specs and the files or servers they need,
/// made per test by <see cref="ChainResources"/>) and says through the capability properties which optional promises
/// it makes; a test of a promise it does not make is skipped with the capability's name. The rig is threaded: aio and
/// nbd complete requests from other threads. Every wait has the generous <see cref="Waits.Deadline"/>.
/// </remarks>
[TestFixture]
public abstract class TerminatorContract
{
    /// <summary>The disk size every subclass's chain serves.</summary>
    protected const long DiskBytes = 4L << 20;

    /// <summary>Cases of the write-then-read property (one rig for all of them).</summary>
    private const int WriteReadCases = 150;

    /// <summary>
    /// The chain under test, frontend side first, ending in the terminator; specs may name files in the test's scratch
    /// directory as <see cref="ChainCase.DirToken"/>. <paramref name="readOnly"/>: the terminator's read-only form
    /// (only asked for when <see cref="HasReadOnlyMode"/>).
    /// </summary>
    protected abstract ChainCase Chain(bool readOnly);

    /// <summary>Sectors the disk must report at attach.</summary>
    protected virtual ulong ExpectedSectors => DiskBytes / BlkifConstants.SectorSize;

    /// <summary>Whether a fresh disk (as <see cref="Chain"/> makes it) reads as zeros.</summary>
    protected virtual bool FreshDiskReadsZeros => true;

    /// <summary>Whether the disk offers discard (feature-discard); if not, a discard on the ring must be answered EOPNOTSUPP.</summary>
    protected virtual bool AdvertisesDiscard => true;

    /// <summary>With <see cref="AdvertisesDiscard"/>: whether discarded sectors read back as zeros.</summary>
    protected virtual bool DiscardReadsBackZeros => true;

    /// <summary>Whether the terminator has a read-only form.</summary>
    protected virtual bool HasReadOnlyMode => true;

    /// <summary>
    /// With <see cref="HasReadOnlyMode"/>: whether the read-only form refuses writes itself, not only through the ring's
    /// check of the read-only flag (a write that some tap above lets through still fails).
    /// </summary>
    protected virtual bool RefusesWritesPastTheRingCheck => true;

    /// <summary>Whether all sessions share one disk (else each session has its own).</summary>
    protected virtual bool SharesTheDiskBetweenSessions => true;

    private static void Requires(bool capability, string name)
    {
        if (!capability) Assert.Ignore($"this terminator does not promise it ({name} is false)");
    }

    // ------------------------------------------------------------------ the contract

    [Test]
    public async Task Attach_EachSession_ReportsTheSizeAndFeatures()
    {
        await using var disk = await StartAsync();
        foreach (var front in disk.Fronts)
        {
            Assert.That(front.Sectors, Is.EqualTo(ExpectedSectors), $"{front}: sectors");
            Assert.That(front.SectorSize, Is.EqualTo(BlkifConstants.SectorSize), $"{front}: sector size");
            Assert.That(front.IsReadOnly, Is.False, $"{front}: read-only");
            Assert.That(front.SupportsFlush, Is.True, $"{front}: feature-flush-cache");
            Assert.That(front.SupportsDiscard, Is.EqualTo(AdvertisesDiscard), $"{front}: feature-discard");
        }
    }

    [Test]
    public void WriteThenRead_RandomSectorLengthAndData_ReadsBackTheDataAndNothingElseChanges()
    {
        var disk = StartAsync().GetAwaiter().GetResult();
        try
        {
            var front = disk.A;
            ulong sectors = front.Sectors;
            // The disk's content so far (a fresh disk need not be zeros here): every write goes into it.
            var model = disk.ReadAllAsync(front).GetAwaiter().GetResult();
            var ranges =
                from count in Gen.Frequency((6, Gen.Choose(1, 16)), (3, Gen.Choose(17, 96)), (1, Gen.Choose(97, 256)))
                from at in Gen.Frequency((8, Gen.Choose(0, (int)sectors - count)), (1, Gen.Constant(0)), (1, Gen.Constant((int)sectors - count)))
                from seed in Gen.Choose(0, int.MaxValue)
                from probe in Gen.Choose(0, (int)sectors - 64)
                select new WriteCase((ulong)at, count, seed, (ulong)probe);
            Prop.ForAll(Arb.From(ranges), c =>
            {
                var data = new byte[c.Count * BlkifConstants.SectorSize];
                new Random(c.Seed).NextBytes(data);
                Assert.That(Wait(front.WriteAsync(c.Sector, data), "write"), Is.EqualTo(BlkifStatus.Okay), $"write {c}; {disk.Describe()}");
                data.CopyTo(model, (int)c.Sector * BlkifConstants.SectorSize);
                var back = new byte[data.Length];
                Assert.That(Wait(front.ReadAsync(c.Sector, back), "read"), Is.EqualTo(BlkifStatus.Okay), $"read {c}; {disk.Describe()}");
                Assert.That(FirstDifference(data, back), Is.Null, $"read back after write {c}");
                // Somewhere else entirely: still what the model says (no write strays).
                var probe = new byte[64 * BlkifConstants.SectorSize];
                Assert.That(Wait(front.ReadAsync(c.Probe, probe), "probe read"), Is.EqualTo(BlkifStatus.Okay), $"probe read {c}");
                Assert.That(FirstDifference(model.AsSpan((int)c.Probe * BlkifConstants.SectorSize, probe.Length), probe), Is.Null, $"probe at {c.Probe} after write {c}");
            }).Check(Config.QuickThrowOnFailure.WithMaxTest(WriteReadCases));
            Assert.That(FirstDifference(model, disk.ReadAllAsync(front).GetAwaiter().GetResult()), Is.Null, "the whole disk after every write");
        }
        finally { disk.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    /// <summary>One write of the property: <paramref name="Count"/> sectors at <paramref name="Sector"/>, data from <paramref name="Seed"/>; then a read at <paramref name="Probe"/>.</summary>
    public sealed record WriteCase(ulong Sector, int Count, int Seed, ulong Probe);

    [Test]
    public async Task Read_FreshDiskNeverWritten_ReadsZeros()
    {
        Requires(FreshDiskReadsZeros, nameof(FreshDiskReadsZeros));
        await using var disk = await StartAsync();
        var all = await disk.ReadAllAsync(disk.A);
        int at = all.AsSpan().IndexOfAnyExcept((byte)0);
        Assert.That(at, Is.EqualTo(-1), $"a never-written disk has a non-zero byte at {at} (sector {at / 512})");
        // The other session, in odd-sized pieces across the end.
        var tail = new byte[7 * BlkifConstants.SectorSize];
        Assert.That(await Waits.For(disk.B.ReadAsync(disk.B.Sectors - 7, tail), "read"), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(tail.AsSpan().IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the last sectors of a never-written disk");
    }

    [Test]
    public async Task Request_OutOfRange_AnsweredErrorAndChangesNothing()
    {
        await using var disk = await StartAsync();
        var front = disk.A;
        ulong end = front.Sectors;
        var tail = Pattern(16, 1);
        Assert.That(await Waits.For(front.WriteAsync(end - 16, tail), "write the tail"), Is.EqualTo(BlkifStatus.Okay));
        var other = Pattern(2, 2);
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await Waits.For(front.ReadAsync(end, new byte[512]), "read"), Is.EqualTo(BlkifStatus.Error), "read of the sector past the end");
            Assert.That(await Waits.For(front.ReadAsync(end - 1, new byte[1024]), "read"), Is.EqualTo(BlkifStatus.Error), "read across the end");
            Assert.That(await Waits.For(front.ReadAsync(end + 1000, new byte[4096]), "read"), Is.EqualTo(BlkifStatus.Error), "read far past the end");
            Assert.That(await Waits.For(front.WriteAsync(end - 1, other), "write"), Is.EqualTo(BlkifStatus.Error), "write across the end");
            Assert.That(await Waits.For(front.WriteAsync(end, other), "write"), Is.EqualTo(BlkifStatus.Error), "write past the end");
            Assert.That((await Waits.For(RawDiscard(front, end - 1, 2), "discard")).Status,
                Is.EqualTo(BlkifStatus.Error), "discard across the end (the range is checked before whether discard is offered)");
        });
        var after = new byte[tail.Length];
        Assert.That(await Waits.For(Witness(disk).ReadAsync(end - 16, after), "read the tail"), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(FirstDifference(tail, after), Is.Null, "the last sectors after the refused requests");
    }

    /// <summary>
    /// The terminator's own range check: a control hook after the whole chain reports 16 sectors more than the disk
    /// has, so the ring lets requests past the real end through to the terminator, which must refuse them itself.
    /// </summary>
    [Test]
    public virtual async Task Request_OutOfRangePastTheRingCheck_TerminatorAnswersErrorAndChangesNothing()
    {
        await using var disk = await StartAsync(after: rt => rt.RegisterControlHook("grow", Hook.Control(e =>
        {
            if (e.Kind == ControlEventKind.Attach && e.Session.Sectors > 0) e.Session.Sectors += 16;
        })));
        var front = disk.A;
        ulong end = ExpectedSectors;
        Assert.That(front.Sectors, Is.EqualTo(end + 16), "the hook grew the disk the guests see");
        var tail = Pattern(16, 9);
        Assert.That(await Waits.For(front.WriteAsync(end - 16, tail), "write the tail"), Is.EqualTo(BlkifStatus.Okay));
        var storageBefore = StorageLength(disk);
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await Waits.For(front.ReadAsync(end, new byte[512]), "read"), Is.EqualTo(BlkifStatus.Error), "read of the sector past the end");
            Assert.That(await Waits.For(front.ReadAsync(end - 1, new byte[1024]), "read"), Is.EqualTo(BlkifStatus.Error), "read across the end");
            Assert.That(await Waits.For(front.WriteAsync(end - 1, Pattern(2, 10)), "write"), Is.EqualTo(BlkifStatus.Error), "write across the end");
            Assert.That(await Waits.For(front.WriteAsync(end + 8, Pattern(8, 11)), "write"), Is.EqualTo(BlkifStatus.Error), "write past the end");
            if (AdvertisesDiscard)
                Assert.That(await Waits.For(front.DiscardAsync(end - 1, 2), "discard"), Is.EqualTo(BlkifStatus.Error), "discard across the end");
        });
        var after = new byte[tail.Length];
        Assert.That(await Waits.For(Witness(disk).ReadAsync(end - 16, after), "read the tail"), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(FirstDifference(tail, after), Is.Null, "the last sectors after the refused requests");
        Assert.That(StorageLength(disk), Is.EqualTo(storageBefore), "the size of the storage below");
    }

    /// <summary>The byte length of the terminator's storage where it is observable (a file, an NBD export), else null.</summary>
    private static long? StorageLength(Disk disk) => disk.Resources.StorageOf(disk.Resources.Specs.Count - 1)?.LongLength;

    [Test]
    public async Task Flush_AfterWritesFromEachSession_Succeeds()
    {
        await using var disk = await StartAsync();
        var data = Pattern(8, 3);
        foreach (var (front, i) in disk.Fronts.Select((f, i) => (f, i)))
        {
            Assert.That(await Waits.For(front.WriteAsync((ulong)(100 + 8 * i), data), "write"), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(await Waits.For(front.FlushAsync(), "flush"), Is.EqualTo(BlkifStatus.Okay), $"{front}: flush");
        }
        // A flush with nothing written since, and one racing writes.
        Assert.That(await Waits.For(disk.A.FlushAsync(), "flush"), Is.EqualTo(BlkifStatus.Okay), "a flush with nothing to flush");
        var racing = Enumerable.Range(0, 8).Select(i => disk.A.WriteAsync((ulong)(200 + 8 * i), data)).Append(disk.A.FlushAsync()).ToArray();
        Assert.That(await Waits.For(Task.WhenAll(racing), "writes and a flush"), Has.All.EqualTo(BlkifStatus.Okay));
    }

    [Test]
    public async Task Discard_WrittenRange_SucceedsAndReadsZerosOrIsNotSupportedAsAdvertised()
    {
        await using var disk = await StartAsync();
        var front = disk.A;
        const ulong start = 1000, count = 64, hole = 1016, holeCount = 32;
        var data = Pattern((int)count, 4);
        Assert.That(await Waits.For(front.WriteAsync(start, data), "write"), Is.EqualTo(BlkifStatus.Okay));
        var expected = (byte[])data.Clone();
        if (AdvertisesDiscard)
        {
            Assert.That(front.SupportsDiscard, Is.True, "the disk offers feature-discard");
            Assert.That(await Waits.For(front.DiscardAsync(hole, holeCount), "discard"), Is.EqualTo(BlkifStatus.Okay), disk.Describe());
            if (!DiscardReadsBackZeros) return;
            expected.AsSpan((int)(hole - start) * 512, (int)holeCount * 512).Clear();
        }
        else
        {
            Assert.That(front.SupportsDiscard, Is.False, "the disk does not offer feature-discard");
            var response = await Waits.For(RawDiscard(front, hole, holeCount), "discard");
            Assert.That(response.Status, Is.EqualTo(BlkifStatus.NotSupported), "a discard the disk does not offer, sent anyway");
        }
        var back = new byte[data.Length];
        Assert.That(await Waits.For(Witness(disk).ReadAsync(start, back), "read"), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(FirstDifference(expected, back), Is.Null, AdvertisesDiscard ? "the discarded sectors read zeros, their neighbours keep their data" : "nothing changed");
    }

    [Test]
    public async Task Write_ReadOnlyDisk_AnsweredErrorAndChangesNothing()
    {
        Requires(HasReadOnlyMode, nameof(HasReadOnlyMode));
        await using var disk = await StartAsync(readOnly: true);
        var front = disk.A;
        Assert.That(front.IsReadOnly, Is.True, "the disk is offered read-only");
        var before = await disk.ReadAllAsync(front);
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await Waits.For(front.WriteAsync(0, Pattern(8, 5)), "write"), Is.EqualTo(BlkifStatus.Error), "write");
            Assert.That(await Waits.For(disk.B.WriteAsync(front.Sectors - 3, Pattern(3, 6)), "write"), Is.EqualTo(BlkifStatus.Error), "write from the other session");
            Assert.That((await Waits.For(RawDiscard(front, 0, 8), "discard")).Status, Is.Not.EqualTo(BlkifStatus.Okay), "discard");
        });
        var after = await disk.ReadAllAsync(Witness(disk));
        Assert.That(FirstDifference(before, after), Is.Null, "the read-only disk after the refused writes");
    }

    [Test]
    public async Task Write_ReadOnlyDiskPastTheRingCheck_TerminatorRefusesAndChangesNothing()
    {
        Requires(HasReadOnlyMode, nameof(HasReadOnlyMode));
        Requires(RefusesWritesPastTheRingCheck, nameof(RefusesWritesPastTheRingCheck));
        // A control hook after the whole chain clears the read-only flag, so the ring lets writes through: the
        // terminator itself must still refuse them.
        await using var disk = await StartAsync(readOnly: true, after: rt => rt.RegisterControlHook("clear-read-only", Hook.Control(e =>
        {
            if (e.Kind == ControlEventKind.Attach) e.Session.ReadOnly = false;
        })));
        var front = disk.A;
        Assert.That(front.IsReadOnly, Is.False, "the flag was cleared above the terminator");
        var before = await disk.ReadAllAsync(front);
        Assert.That(await Waits.For(front.WriteAsync(8, Pattern(16, 7)), "write"), Is.EqualTo(BlkifStatus.Error), disk.Describe());
        Assert.That(await Waits.For(disk.B.WriteAsync(front.Sectors - 1, Pattern(1, 8)), "write"), Is.EqualTo(BlkifStatus.Error), disk.Describe());
        var after = await disk.ReadAllAsync(Witness(disk));
        Assert.That(FirstDifference(before, after), Is.Null, "the read-only disk after the writes it refused");
    }

    [Test]
    public async Task Write_TwoSessionsConcurrently_EachSeesTheOthersWritesIfShared()
    {
        await using var disk = await StartAsync();
        const int slots = 32, slotSectors = 8;
        var writes = new List<Task<BlkifStatus>>();
        var data = new byte[2][][];
        // Interleaved slots, every write of both sessions in flight together.
        for (int s = 0; s < 2; s++)
        {
            data[s] = new byte[slots][];
            for (int i = 0; i < slots; i++)
            {
                data[s][i] = Pattern(slotSectors, 100 * s + i + 10);
                writes.Add(disk.Fronts[s].WriteAsync((ulong)((2 * i + s) * slotSectors), data[s][i]));
            }
        }
        Assert.That(await Waits.For(Task.WhenAll(writes), "the writes of both sessions"), Has.All.EqualTo(BlkifStatus.Okay), disk.Describe());
        for (int s = 0; s < 2; s++)
        {
            var reader = disk.Fronts[1 - s];
            var reads = Enumerable.Range(0, slots).Select(async i =>
            {
                var back = new byte[slotSectors * BlkifConstants.SectorSize];
                var status = await reader.ReadAsync((ulong)((2 * i + s) * slotSectors), back);
                return (i, status, back);
            }).ToList();
            foreach (var (i, status, back) in await Waits.For(Task.WhenAll(reads), "the reads"))
            {
                Assert.That(status, Is.EqualTo(BlkifStatus.Okay));
                if (SharesTheDiskBetweenSessions)
                    Assert.That(FirstDifference(data[s][i], back), Is.Null, $"session {1 - s} reads session {s}'s write in slot {i}");
                else
                    Assert.That(back.AsSpan().SequenceEqual(data[s][i]), Is.False, $"session {1 - s} has its own disk, yet reads session {s}'s write in slot {i}");
            }
        }
        if (!SharesTheDiskBetweenSessions) return;
        // One sector, written in turn: each session reads the other's latest write.
        for (int round = 0; round < 6; round++)
        {
            var writer = disk.Fronts[round % 2];
            var reader = disk.Fronts[1 - round % 2];
            var sector = Pattern(1, 1000 + round);
            Assert.That(await Waits.For(writer.WriteAsync(5, sector), "write"), Is.EqualTo(BlkifStatus.Okay));
            var back = new byte[512];
            Assert.That(await Waits.For(reader.ReadAsync(5, back), "read"), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(FirstDifference(sector, back), Is.Null, $"round {round}: the other session's latest write");
        }
    }

    // ------------------------------------------------------------------ the rig

    /// <summary>The chain on a threaded emulator rig with two guests, its resources, and the runtime's diagnostics.</summary>
    protected sealed class Disk : IAsyncDisposable
    {
        public required ChainResources Resources { get; init; }
        public required TapChain Taps { get; init; }
        public required EmulatorRig Rig { get; init; }
        public required List<string> Diagnostics { get; init; }
        public IReadOnlyList<BlkFront> Fronts => Rig.Frontends;
        public BlkFront A => Rig.Frontends[0];
        public BlkFront B => Rig.Frontends[1];

        public string Describe()
        {
            lock (Diagnostics) return $"chain {string.Join(" → ", Resources.Specs)}; {Rig.Describe()}; diagnostics: {string.Join(" / ", Diagnostics.Take(10))}";
        }

        /// <summary>Reads the whole disk through <paramref name="front"/>.</summary>
        public async Task<byte[]> ReadAllAsync(BlkFront front)
        {
            var all = new byte[checked((int)front.Sectors * BlkifConstants.SectorSize)];
            const int chunk = 256 * 1024;
            for (int at = 0; at < all.Length; at += chunk)
            {
                var s = await Waits.For(front.ReadAsync((ulong)at / BlkifConstants.SectorSize, all.AsMemory(at, Math.Min(chunk, all.Length - at))), "reading the disk");
                if (s != BlkifStatus.Okay) Assert.Fail($"reading the disk at byte {at}: {s}; {Describe()}");
            }
            return all;
        }

        public async ValueTask DisposeAsync()
        {
            try { await Rig.DisposeAsync(); }
            finally
            {
                try { Taps.Dispose(); }
                finally { Resources.Dispose(); }
            }
        }
    }

    /// <summary>Starts the chain (<see cref="Chain"/>) with two guests; <paramref name="after"/> registers more hooks after it.</summary>
    protected async Task<Disk> StartAsync(bool readOnly = false, Action<TapRuntime>? after = null)
    {
        var resources = ChainResources.Create(Chain(readOnly));
        TapChain? taps = null;
        try
        {
            taps = resources.Build(new TapContext { Output = TextWriter.Null });
            var diagnostics = new List<string>();
            var rig = await Waits.For(EmulatorRig.StartAsync(new EmulatorRigOptions
            {
                Frontends = 2,
                Diagnostics = d => { lock (diagnostics) diagnostics.Add(d.ToString()); },
            }, rt =>
            {
                TapChain.Register(rt, taps);
                after?.Invoke(rt);
            }), "the rig to start with both guests connected");
            return new Disk { Resources = resources, Taps = taps, Rig = rig, Diagnostics = diagnostics };
        }
        catch
        {
            taps?.Dispose();
            resources.Dispose();
            throw;
        }
    }

    /// <summary>The session that checks what the first one did: the other one when they share the disk, else the first itself.</summary>
    private BlkFront Witness(Disk disk) => SharesTheDiskBetweenSessions ? disk.B : disk.A;

    private static T Wait<T>(Task<T> task, string what) => Waits.For(task, what).GetAwaiter().GetResult();

    private static Task<BlkifResponse> RawDiscard(BlkFront front, ulong sector, ulong count)
    {
        // Straight onto the ring, whatever the disk offers (BlkFront.DiscardAsync would answer EOPNOTSUPP itself).
        var request = new BlkifRequest { Operation = BlkifOperation.Discard, Handle = (ushort)front.DeviceId, Sector = sector, DiscardSectorCount = count };
        var bytes = new byte[front.Layout.RequestSize];
        BlkifCodec.EncodeRequest(request, front.Layout, bytes);
        return front.SubmitRaw(bytes);
    }

    private static byte[] Pattern(int sectors, int seed)
    {
        var b = new byte[sectors * BlkifConstants.SectorSize];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static string? FirstDifference(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual)
    {
        if (expected.Length != actual.Length) return $"length {actual.Length}, expected {expected.Length}";
        int first = expected.CommonPrefixLength(actual);
        return first == expected.Length ? null : $"differs at byte {first} (sector {first / BlkifConstants.SectorSize})";
    }
}
