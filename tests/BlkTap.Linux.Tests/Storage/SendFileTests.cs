using System.Net.Sockets;
using BlkTap.Linux.Storage;
using BlkTap.Storage;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.Storage;

/// <summary>
/// <see cref="NonBlockingIo.SendFile"/> (sendfile(2)) from a file in memory into a non-blocking Unix socket, and the
/// handle <see cref="LinuxStorageFile"/> lends for it (<see cref="IReferenceableStorageFile"/>).
/// </summary>
[NonParallelizable]
public class SendFileTests
{
    private string _image = null!;
    private byte[] _bytes = null!;

    [SetUp]
    public void CreateImage()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        _image = Path.Combine("/dev/shm", $"blktap-sendfile-{Environment.ProcessId}-{Guid.NewGuid():N}");
        _bytes = new byte[4 << 20];
        new Random(7).NextBytes(_bytes);
        File.WriteAllBytes(_image, _bytes);
    }

    [TearDown]
    public void DeleteImage() => File.Delete(_image);

    private static (Socket Sender, Socket Receiver, string Dir) Pair()
    {
        var dir = Directory.CreateTempSubdirectory("blktap-sendfile-").FullName;
        var path = Path.Combine(dir, "s");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var receiver = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 60_000 };
        receiver.Connect(new UnixDomainSocketEndPoint(path));
        var sender = listener.Accept();
        sender.Blocking = false;
        sender.SendBufferSize = 64 * 1024; // small, so a send of megabytes stops part-way on any machine
        return (sender, receiver, dir);
    }

    [Test]
    public void SendFile_FullSocketThenEnd_SendsTheRangeInOrderThenWouldBlockThenZeroAtEnd()
    {
        var (sender, receiver, dir) = Pair();
        using var file = (LinuxStorageFile)LinuxStorageProvider.Shared.Open(_image, StorageOpenOptions.None);
        using (sender)
        using (receiver)
        {
            var handle = file.ReferenceHandle;
            Assert.That(handle, Is.Not.Null, "a file on tmpfs lends its handle");
            // 3 MiB from offset 512 KiB into a socket nobody reads yet: the send stops when the buffer is full.
            const int offset = 512 * 1024, length = 3 << 20;
            long first = NonBlockingIo.SendFile((int)sender.Handle, handle!, offset, length);
            Assert.That(first, Is.GreaterThan(0).And.LessThan(length), "a non-blocking socket takes part of it");
            Assert.That(NonBlockingIo.SendFile((int)sender.Handle, handle!, offset + first, (int)(length - first)), Is.EqualTo(NonBlockingIo.WouldBlock));
            var got = new byte[length];
            int have = 0;
            long sent = first;
            while (have < length)
            {
                have += receiver.Receive(got, have, length - have, SocketFlags.None);
                if (sent < length)
                {
                    long n = NonBlockingIo.SendFile((int)sender.Handle, handle!, offset + sent, (int)(length - sent));
                    if (n > 0) sent += n;
                    else Assert.That(n, Is.EqualTo(NonBlockingIo.WouldBlock));
                }
            }
            Assert.That(got.AsSpan().SequenceEqual(_bytes.AsSpan(offset, length)), Is.True, "the bytes are the file's, in order");
            Assert.That(NonBlockingIo.SendFile((int)sender.Handle, handle!, _bytes.Length, 4096), Is.Zero, "at the file's end");
        }
        Directory.Delete(dir, true);
    }

    [Test]
    public void SendFile_ClosedPeer_ReturnsNegativeErrnoNotException()
    {
        var (sender, receiver, dir) = Pair();
        using var file = (LinuxStorageFile)LinuxStorageProvider.Shared.Open(_image, StorageOpenOptions.None);
        using (sender)
        {
            receiver.Dispose();
            long n = NonBlockingIo.SendFile((int)sender.Handle, file.ReferenceHandle!, 0, 65536);
            Assert.That(n, Is.LessThan(0));
            Assert.That(NonBlockingIo.Describe(n), Does.StartWith("EPIPE").Or.StartWith("ECONNRESET"));
        }
        Directory.Delete(dir, true);
    }

    [Test]
    public void ReferenceHandle_FileOnADisk_IsNull()
    {
        // The work tree is not tmpfs on any machine this runs on (a send from a disk file could wait for the disk).
        var path = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"sendfile-{Guid.NewGuid():N}");
        File.WriteAllBytes(path, new byte[4096]);
        try
        {
            using var file = (LinuxStorageFile)LinuxStorageProvider.Shared.Open(path, StorageOpenOptions.None);
            if (file.InMemory) Assert.Ignore("the work directory is on tmpfs here");
            Assert.That(file.ReferenceHandle, Is.Null);
        }
        finally { File.Delete(path); }
    }
}
