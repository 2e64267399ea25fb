using BlkTap.Linux.Storage;
using BlkTap.Storage;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.Storage;

/// <summary>The OS implementation of the storage seam, on a real temporary file.</summary>
public class LinuxStorageTests
{
    [Test]
    public void LinuxStorageProvider_CreateWriteFlushPunchMove_BehavesAsTheFileSystem()
    {
        var dir = Directory.CreateTempSubdirectory("blktap-storage-").FullName;
        try
        {
            var storage = LinuxStorageProvider.Shared;
            var tmp = Path.Combine(dir, "a.tmp");
            var path = Path.Combine(dir, "a");
            using (var f = storage.Create(tmp))
            {
                f.SetLength(8192);
                f.Write(Enumerable.Repeat((byte)3, 4096).ToArray(), 0);
                f.Flush();
                Assert.That(f.Length, Is.EqualTo(8192));
                var status = f.PunchHole(0, 4096);
                Assert.That(status, Is.AnyOf(BlkifStatus.Okay, BlkifStatus.NotSupported));
                var back = new byte[4096];
                Assert.That(f.ReadFully(back, 0), Is.EqualTo(4096));
                Assert.That(back.All(b => b == (status == BlkifStatus.Okay ? 0 : 3)), Is.True);
                Assert.That(f.ReadFully(back, 6144), Is.EqualTo(2048), "a read past the end stops there and zero-fills");
            }
            storage.Move(tmp, path);
            storage.SyncDirectory(dir);
            Assert.That(storage.FileExists(path) && !storage.FileExists(tmp) && storage.DirectoryExists(dir), Is.True);
            using var ro = storage.Open(path, StorageOpenOptions.None);
            Assert.That(ro.ReadOnly, Is.True);
            Assert.That(ro.PunchHole(0, 512), Is.EqualTo(BlkifStatus.Error));
            Assert.Throws<UnauthorizedAccessException>(() => ro.Write(new byte[512], 0));
        }
        finally { Directory.Delete(dir, true); }
    }

    private static string ShmDirectory()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        return Directory.CreateDirectory(Path.Combine("/dev/shm", "blktap-storage-" + Guid.NewGuid().ToString("N"))).FullName;
    }

    [Test]
    public void InMemoryFile_RandomReadsAndWrites_EqualTheModelAndAnotherHandle()
    {
        var dir = ShmDirectory();
        try
        {
            var path = Path.Combine(dir, "a");
            const int length = 64 << 10;
            using (var created = File.Create(path)) created.SetLength(length);
            using var f = LinuxStorageProvider.Shared.Open(path, StorageOpenOptions.Writable);
            Assert.That(((INoWaitStorageFile)f).NeverWaits, Is.True, "a file in /dev/shm never waits");
            using var other = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var model = new byte[length];
            var nowait = (INoWaitStorageFile)f;
            // Property: 3000 random writes and reads (some through the no-wait calls, some reaching past the end) against
            // a byte model, each read also checked through a second handle with RandomAccess.
            var random = new Random(2026);
            for (int i = 0; i < 3000; i++)
            {
                int count = 1 + random.Next(9000);
                if (random.Next(2) == 0)
                {
                    int offset = random.Next(length - count + 1);
                    var data = new byte[count];
                    random.NextBytes(data);
                    if (random.Next(2) == 0) f.Write(data, offset);
                    else Assert.That(nowait.TryWriteNoWait(data, offset), Is.True);
                    data.CopyTo(model, offset);
                }
                else
                {
                    int offset = random.Next(length + 8192);
                    var back = new byte[count];
                    int n;
                    if (random.Next(2) == 0) n = f.Read(back, offset);
                    else Assert.That(nowait.TryReadNoWait(back, offset, out n), Is.True);
                    int expected = Math.Max(0, Math.Min(count, length - offset));
                    Assert.That(n, Is.EqualTo(expected), $"read {i}: {count} bytes at {offset} stop at the end of the file");
                    Assert.That(back.AsSpan(0, n).SequenceEqual(model.AsSpan(Math.Min(offset, length), n)), Is.True, $"read {i} equals the model");
                    var viaOther = new byte[count];
                    Assert.That(RandomAccess.Read(other, viaOther, offset), Is.EqualTo(n));
                    Assert.That(viaOther.AsSpan(0, n).SequenceEqual(back.AsSpan(0, n)), Is.True, $"read {i} equals what another handle reads");
                }
            }
            Assert.Throws<ArgumentOutOfRangeException>(() => f.Read(new byte[512], -1));
            Assert.Throws<ArgumentOutOfRangeException>(() => f.Write(new byte[512], -1));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void InMemoryFile_ReadOnlyOrDisposed_ThrowsAsRandomAccessDoes()
    {
        var dir = ShmDirectory();
        try
        {
            var path = Path.Combine(dir, "a");
            using (var f = LinuxStorageProvider.Shared.Create(path)) f.SetLength(8192);
            var ro = (INoWaitStorageFile)LinuxStorageProvider.Shared.Open(path, StorageOpenOptions.None);
            Assert.That(ro.NeverWaits, Is.True);
            Assert.Throws<UnauthorizedAccessException>(() => ro.Write(new byte[512], 0));
            Assert.Throws<UnauthorizedAccessException>(() => ro.TryWriteNoWait(new byte[512], 0));
            Assert.That(ro.Read(new byte[512], 0), Is.EqualTo(512));
            ro.Dispose();
            Assert.Throws<ObjectDisposedException>(() => ro.Read(new byte[512], 0));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void DiskFile_NeverWaits_False()
    {
        var dir = Directory.CreateTempSubdirectory("blktap-storage-").FullName;
        try
        {
            using var f = LinuxStorageProvider.Shared.Create(Path.Combine(dir, "a"));
            if (((LinuxStorageFile)f).InMemory) Assert.Ignore("the temporary directory is in memory here");
            Assert.That(((INoWaitStorageFile)f).NeverWaits, Is.False, "a file on a disk may wait");
        }
        finally { Directory.Delete(dir, true); }
    }
}
