using BlkTap.Emulator.PowerCut;
using BlkTap.Storage;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests.PowerLoss;

/// <summary>The simulated storage's model of a power cut: what survives each variant.</summary>
public class PowerCutStorageTests
{
    private const string Dir = "/sim";
    private const string FilePath = "/sim/f";

    private static (PowerCutStorage Storage, IStorageFile File) NewFile(int sectors, byte fill)
    {
        var storage = new PowerCutStorage(Dir);
        storage.AddDurableFile(FilePath, Enumerable.Repeat(fill, sectors * 512).ToArray());
        return (storage, storage.Open(FilePath, StorageOpenOptions.Writable));
    }

    [Test]
    public void Cut_SyncedOnly_KeepsSyncedWritesAndDropsTheRest()
    {
        var (storage, f) = NewFile(4, 0xAA);
        f.Write(Enumerable.Repeat((byte)1, 512).ToArray(), 0);
        f.Flush();
        f.Write(Enumerable.Repeat((byte)2, 512).ToArray(), 512);
        var after = storage.Cut(PowerCutVariant.SyncedOnly, new Random(1)).ReadAll(FilePath)!;
        Assert.That(after[..512].All(b => b == 1), "the synced write survives");
        Assert.That(after[512..1024].All(b => b == 0xAA), "the unsynced write is lost");
        Assert.That(storage.ReadAll(FilePath)![512], Is.EqualTo(2), "before the cut, reads saw the unsynced write");
    }

    [Test]
    public void Cut_RandomSubset_EachUnsyncedWriteSurvivesInSomeCutsAndNotInOthers()
    {
        bool sawKept = false, sawLost = false;
        for (int seed = 0; seed < 64; seed++)
        {
            var (storage, f) = NewFile(2, 0xAA);
            f.Write(Enumerable.Repeat((byte)7, 512).ToArray(), 512);
            byte b = storage.Cut(PowerCutVariant.RandomSubset, new Random(seed)).ReadAll(FilePath)![512];
            Assert.That(b, Is.AnyOf((byte)7, (byte)0xAA));
            sawKept |= b == 7;
            sawLost |= b == 0xAA;
        }
        Assert.That(sawKept && sawLost, Is.True, $"kept seen {sawKept}, lost seen {sawLost}");
    }

    [Test]
    public void Cut_TornWrite_EachSectorHoldsTheOldOrTheNewDataAndSomeCutsMixThem()
    {
        bool mixed = false;
        for (int seed = 0; seed < 32; seed++)
        {
            var (storage, f) = NewFile(8, 0xAA);
            f.Write(Enumerable.Repeat((byte)5, 8 * 512).ToArray(), 0);
            var after = storage.Cut(PowerCutVariant.TornWrite, new Random(seed));
            var data = after.ReadAll(FilePath)!;
            var sectors = Enumerable.Range(0, 8).Select(s => data.AsSpan(s * 512, 512).ToArray()).ToList();
            foreach (var s in sectors) Assert.That(s.All(b => b == 5) || s.All(b => b == 0xAA), Is.True, "a sector is atomic");
            mixed |= sectors.Any(s => s[0] == 5) && sectors.Any(s => s[0] == 0xAA);
            Assert.That(storage.TornWrites, Is.EqualTo(1));
        }
        Assert.That(mixed, Is.True, "a torn write left old and new sectors side by side");
    }

    [Test]
    public void Cut_UnsyncedSetLength_MayOrMayNotHaveHappened()
    {
        var lengths = new HashSet<int>();
        for (int seed = 0; seed < 32; seed++)
        {
            var (storage, f) = NewFile(4, 0xAA);
            f.SetLength(512);
            lengths.Add(storage.Cut(PowerCutVariant.RandomSubset, new Random(seed)).ReadAll(FilePath)!.Length);
        }
        Assert.That(lengths, Is.EquivalentTo(new[] { 512, 2048 }));
    }

    [Test]
    public void Cut_RenameWithoutDirectorySync_IsLostWhenOnlySyncedDataSurvives()
    {
        var storage = new PowerCutStorage(Dir);
        using (var f = storage.Create("/sim/tmp"))
        {
            f.Write(new byte[512], 0);
            f.Flush();
        }
        storage.Move("/sim/tmp", "/sim/new");
        var after = storage.Cut(PowerCutVariant.SyncedOnly, new Random(1));
        Assert.That(after.FileExists("/sim/new"), Is.False, "the name was never synced");

        var synced = new PowerCutStorage(Dir);
        using (var f = synced.Create("/sim/tmp")) { f.Write(new byte[512], 0); f.Flush(); }
        synced.Move("/sim/tmp", "/sim/new");
        synced.SyncDirectory(Dir);
        var kept = synced.Cut(PowerCutVariant.SyncedOnly, new Random(1));
        Assert.That(kept.ReadAll("/sim/new"), Has.Length.EqualTo(512), "renamed, synced file and directory survive");
        Assert.That(kept.FileExists("/sim/tmp"), Is.False);
    }

    [Test]
    public void ArmCut_AtAnOperation_ThatOperationAndEveryLaterCallFail()
    {
        var (storage, f) = NewFile(2, 0);
        storage.ArmCut(2, PowerCutVariant.SyncedOnly, new Random(1));
        f.Write(new byte[512], 0);
        Assert.Throws<IOException>(() => f.Flush());
        Assert.That(storage.IsCut, Is.True);
        Assert.Throws<IOException>(() => f.Read(new byte[512], 0));
        Assert.That(f.PunchHole(0, 512), Is.EqualTo(BlkifStatus.Error));
        Assert.That(storage.AfterCut, Is.Not.Null);
    }

    [Test]
    public void Flush_LyingFlushes_NothingSurvivesASyncedOnlyCut()
    {
        var storage = new PowerCutStorage(Dir) { LyingFlushes = true };
        storage.AddDurableFile(FilePath, new byte[512]);
        using var f = storage.Open(FilePath, StorageOpenOptions.Writable);
        f.Write(Enumerable.Repeat((byte)9, 512).ToArray(), 0);
        f.Flush();
        Assert.That(storage.Cut(PowerCutVariant.SyncedOnly, new Random(1)).ReadAll(FilePath)!.All(b => b == 0), Is.True);
    }

    [Test]
    public void Open_ExclusiveWhileOpen_IsRefused()
    {
        var (storage, f) = NewFile(1, 0);
        Assert.Throws<IOException>(() => storage.Open(FilePath, StorageOpenOptions.Writable | StorageOpenOptions.Exclusive));
        f.Dispose();
        using var exclusive = storage.Open(FilePath, StorageOpenOptions.Writable | StorageOpenOptions.Exclusive);
        Assert.Throws<IOException>(() => storage.Open(FilePath, StorageOpenOptions.None));
    }
}
