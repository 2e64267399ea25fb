using System.Diagnostics;
using BlkTap.Linux.Interop;
using BlkTap.Linux.Storage;
using BlkTap.Storage;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.Storage;

/// <summary>
/// <see cref="IMappableStorageFile"/> on a file in /dev/shm: reads and writes through the mapping against a model and
/// against a second handle, holes never allocated by a read, a full file system an error, not a signal.
/// </summary>
public class FileMappingTests
{
    private const int Page = 4096;
    private string _dir = "";
    private string? _mount;

    [SetUp]
    public void SetUp()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        _dir = Directory.CreateDirectory(Path.Combine("/dev/shm", "blktap-map-" + Guid.NewGuid().ToString("N"))).FullName;
    }

    [TearDown]
    public void TearDown()
    {
        if (_mount != null) { Run("umount", "-l", _mount); Directory.Delete(_mount); _mount = null; }
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
    }

    private static string Sparse(string dir, long bytes)
    {
        var path = Path.Combine(dir, "f");
        using var f = File.Create(path);
        f.SetLength(bytes);
        return path;
    }

    private static LinuxStorageFile OpenMapped(string path)
    {
        var file = (LinuxStorageFile)LinuxStorageProvider.Shared.Open(path, StorageOpenOptions.Writable);
        Assert.That(file.TryMap(out var why), Is.True, $"mapping a file in /dev/shm: {why}");
        Assert.That(file.Mapped, Is.True);
        return file;
    }

    private static bool HasData(string path, long offset, long length)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        long data = Libc.Lseek(h, offset, Libc.SEEK_DATA);
        return data >= 0 && data < offset + length;
    }

    [Test]
    public void ReadWritePunch_MappedFileAgainstModel_EveryByteMatches([Range(0, 11)] int seed)
    {
        // 6 MiB: three 2 MiB scan chunks; part of it written before the mapping (found by the scan), the rest holes.
        const long size = 6L << 20;
        var path = Sparse(_dir, size);
        var model = new byte[size];
        var random = new Random(seed);
        using (var pre = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            for (int i = 0; i < 8; i++)
            {
                long at = random.NextInt64(size / Page - 64) * Page;
                var bytes = new byte[Page * random.Next(1, 64)];
                random.NextBytes(bytes);
                pre.Position = at;
                pre.Write(bytes);
                bytes.CopyTo(model.AsSpan((int)at));
            }
        }
        int ops = 0;
        using (var file = OpenMapped(path))
        {
            for (int i = 0; i < 600; i++)
            {
                int kind = random.Next(10);
                // Mostly page-sized and page-aligned (as a disk's requests are), some unaligned and some spanning pages.
                int length = random.Next(4) == 0 ? random.Next(1, 3 * Page) : Page * random.Next(1, 4);
                long offset = random.Next(4) == 0 ? random.NextInt64(size - length) : random.NextInt64((size - length) / Page) * Page;
                if (kind < 4)
                {
                    var data = new byte[length];
                    random.NextBytes(data);
                    file.Write(data, offset);
                    data.CopyTo(model.AsSpan((int)offset));
                }
                else if (kind < 9)
                {
                    var back = new byte[length];
                    Assert.That(file.Read(back, offset), Is.EqualTo(length));
                    Assert.That(back, Is.EqualTo(model.AsSpan((int)offset, length).ToArray()), $"seed {seed}, op {i}: read of {length} at {offset}");
                }
                else
                {
                    long at = random.NextInt64(size / Page - 16) * Page, bytes = Page * random.Next(1, 16);
                    Assert.That(file.PunchHole(at, bytes), Is.EqualTo(BlkifStatus.Okay));
                    model.AsSpan((int)at, (int)bytes).Clear();
                }
                ops++;
            }
            Assert.That(file.MappedOperations, Is.GreaterThan(0), "pages that hold data were copied through the mapping");
            Assert.That(file.MappedOperations, Is.LessThan(ops), "holes were read and written with system calls");
        }
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(model), "the file, read through another handle, holds every write");
    }

    [Test]
    public void Read_HolesOfAMappedFile_AllocatesNothing()
    {
        var path = Sparse(_dir, 8L << 20);
        using var file = OpenMapped(path);
        var back = new byte[64 << 10];
        for (long at = 0; at < 8L << 20; at += back.Length)
        {
            back.AsSpan().Fill(0xEE);
            Assert.That(file.Read(back, at), Is.EqualTo(back.Length));
            Assert.That(back, Is.All.Zero);
        }
        Assert.That(file.MappedOperations, Is.Zero, "a hole is read with pread");
        Assert.That(HasData(path, 0, 8L << 20), Is.False, "reading the holes left the file without data (a mapped read would have allocated pages)");
    }

    [Test]
    public void Read_DenseFileWrittenBeforeTheMapping_EveryReadCopiedThroughTheMapping()
    {
        const long size = 5L << 20; // past two whole chunks, ending inside a third
        var path = Path.Combine(_dir, "dense");
        var content = new byte[size];
        new Random(5).NextBytes(content);
        File.WriteAllBytes(path, content);
        using var file = OpenMapped(path);
        var back = new byte[Page];
        int reads = 0;
        for (long at = size - Page; at >= 0; at -= 7 * Page, reads++)
        {
            Assert.That(file.Read(back, at), Is.EqualTo(Page));
            Assert.That(back, Is.EqualTo(content.AsSpan((int)at, Page).ToArray()));
        }
        Assert.That(file.MappedOperations, Is.EqualTo(reads), "the scan found every page holding data");
    }

    [Test]
    public void PunchHole_MappedPagesThatHeldData_ReadAfterwardAllocatesNothing()
    {
        var path = Path.Combine(_dir, "dense");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)9, 1 << 20).ToArray());
        using var file = OpenMapped(path);
        var back = new byte[Page];
        Assert.That(file.Read(back, 8 * Page), Is.EqualTo(Page));
        Assert.That(file.MappedOperations, Is.EqualTo(1));
        Assert.That(file.PunchHole(8 * Page, 4 * Page), Is.EqualTo(BlkifStatus.Okay));
        for (int i = 8; i < 12; i++)
        {
            Assert.That(file.Read(back, i * Page), Is.EqualTo(Page));
            Assert.That(back, Is.All.Zero);
        }
        Assert.That(file.MappedOperations, Is.EqualTo(1), "punched pages are read with pread");
        Assert.That(HasData(path, 8 * Page, 4 * Page), Is.False, "the punched pages stay holes after being read");
    }

    [Test]
    public void SetLength_ShorterWhileMapped_ReadsPastTheNewEndStopThere()
    {
        var path = Path.Combine(_dir, "dense");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)7, 8 << 20).ToArray());
        using var file = OpenMapped(path);
        var back = new byte[Page];
        Assert.That(file.Read(back, 6L << 20), Is.EqualTo(Page));
        file.SetLength(4L << 20);
        // Without the mapping told first, this copy would touch a page past the end of the file: SIGBUS.
        Assert.That(file.Read(back, 6L << 20), Is.Zero, "past the new end: end of file");
        Assert.That(file.Read(back, (4L << 20) - Page), Is.EqualTo(Page));
        Assert.That(back, Is.All.EqualTo((byte)7));
    }

    [Test]
    public void Write_HoleOnAFullFileSystem_FailsWithNoSpaceAndTheFileStaysUsable()
    {
        // A tmpfs of 1 MiB holding a 4 MiB sparse file: a write to a hole past the first MiB finds no space. Through the
        // mapping that would be SIGBUS; the file writes holes with pwrite, which answers ENOSPC.
        var mount = Path.Combine(Path.GetTempPath(), "blktap-map-full-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(mount);
        if (Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount) != 0)
        {
            Directory.Delete(mount);
            Assert.Ignore("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)");
        }
        _mount = mount;
        var path = Sparse(mount, 4L << 20);
        using var file = OpenMapped(path);
        var page = Enumerable.Repeat((byte)0x5A, Page).ToArray();
        var failure = Assert.Throws<IOException>(() =>
        {
            for (long at = 0; at < 4L << 20; at += Page) file.Write(page, at);
        });
        Assert.That(failure!.Message, Does.Contain("space").IgnoreCase, "ENOSPC named");
        long mappedBefore = file.MappedOperations;
        file.Write(Enumerable.Repeat((byte)0x6B, Page).ToArray(), 0); // a page that holds data: through the mapping
        Assert.That(file.MappedOperations, Is.EqualTo(mappedBefore + 1));
        var back = new byte[Page];
        Assert.That(file.Read(back, 0), Is.EqualTo(Page));
        Assert.That(back, Is.All.EqualTo((byte)0x6B));
    }

    [Test]
    public void TryMap_FileOnADisk_NotOffered()
    {
        var dir = Directory.CreateTempSubdirectory("blktap-map-disk-").FullName;
        try
        {
            var path = Sparse(dir, 1 << 20);
            using var file = (LinuxStorageFile)LinuxStorageProvider.Shared.Open(path, StorageOpenOptions.Writable);
            if (file.InMemory) Assert.Ignore("the temporary directory is in memory here");
            Assert.That(file.TryMap(out var why), Is.False);
            Assert.That(why, Is.Null, "not offered, nothing refused");
            Assert.That(file.Mapped, Is.False);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void TryMap_EmptyFile_NotOffered()
    {
        var path = Sparse(_dir, 0);
        using var file = (LinuxStorageFile)LinuxStorageProvider.Shared.Open(path, StorageOpenOptions.Writable);
        Assert.That(file.TryMap(out var why), Is.False);
        Assert.That(why, Is.Null);
    }

    private static int Run(string command, params string[] args)
    {
        var psi = new ProcessStartInfo(command) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            p.WaitForExit();
            return p.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception) { return -1; }
    }
}
