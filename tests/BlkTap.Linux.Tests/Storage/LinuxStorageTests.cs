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
}
