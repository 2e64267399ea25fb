using BlkTap.Abstractions.Tests.Advisories;
using BlkTap.Storage;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Abstractions.Tests.Devices;

/// <summary>
/// <see cref="FileBlockDevice"/>'s in-order batch against a request too scattered for it: an indirect read of 80
/// half-page segments (80 runs, more than a batch's 64 operations) is served at once, after what the pass had gathered,
/// so it still sees the write put on the ring just before it.
/// </summary>
public class FileBlockDeviceBatchOrderTests
{
    [Test]
    public async Task Submit_ScatteredIndirectReadAfterAWriteInOnePass_SeesTheWrite()
    {
        var file = new ArrayFile(AdvisoryRig.DiskBytes);
        using var device = new FileBlockDevice(file, discard: false);
        await using var rig = await AdvisoryRig.StartAsync(guests: 1, device: device);
        rig.Inspect = device.Submit; // as the img tap serves: the loop's way in, not the blocking calls
        var guest = rig.Frontends[0];

        var (writePage, writeRef) = AdvisoryRig.GrantPage(guest, readOnly: true);
        guest.Domain.GetPage(writePage).Fill(0xA1);
        var write = AdvisoryRig.Rw(BlkifOperation.Write, 0, new BlkifSegment(writeRef, 0, 7)); // sectors 0-7

        const int segments = 80;
        var pages = Enumerable.Range(0, segments).Select(_ => AdvisoryRig.GrantPage(guest)).ToArray();
        foreach (var (page, _) in pages) guest.Domain.GetPage(page).Fill(0x5A);
        var (descriptors, descriptorRef) = AdvisoryRig.GrantPage(guest, readOnly: true);
        // Segment i: sectors 0-3 of its page, request sectors 4i..4i+3; half pages, so no two segments are one run.
        for (int i = 0; i < segments; i++) GuestMemory.WriteDescriptor(guest.Domain, descriptors, i, new BlkifSegment(pages[i].Ref, 0, 3));
        var read = new BlkifRequest { Operation = BlkifOperation.Indirect, IndirectOperation = BlkifOperation.Read, SegmentCount = segments, Sector = 0 };
        read.IndirectRefs[0] = descriptorRef;

        // Both from one scheduler turn: the frontend puts them on the ring with one push, so the tap takes them in one pass.
        Task<BlkifResponse>? written = null, wasRead = null;
        Waits.OnScheduler(rig.Emulator, () =>
        {
            written = guest.SubmitRaw(AdvisoryRig.Raw(write, guest.Layout));
            wasRead = guest.SubmitRaw(AdvisoryRig.Raw(read, guest.Layout));
        });
        Assert.That((await Waits.For(written!, "the write's response")).Status, Is.EqualTo(BlkifStatus.Okay));
        Assert.That((await Waits.For(wasRead!, "the scattered read's response")).Status, Is.EqualTo(BlkifStatus.Okay));
        Assert.That(Waits.OnLoop(rig.Runtime, () => device.Batched), Is.True, "the file's reads and writes are batched");
        for (int i = 0; i < segments; i++)
        {
            var data = guest.Domain.GetPage(pages[i].Page).ToArray();
            byte expected = i < 2 ? (byte)0xA1 : (byte)0;
            Assert.That(data.AsSpan(0, 2048).IndexOfAnyExcept(expected), Is.EqualTo(-1), $"segment {i} reads what the disk holds after the write");
            Assert.That(data.AsSpan(2048).IndexOfAnyExcept((byte)0x5A), Is.EqualTo(-1), $"segment {i}: the rest of its page untouched");
        }
    }

    /// <summary>A file in an array that says it never waits (as a file in memory does).</summary>
    private sealed class ArrayFile(long length) : INoWaitStorageFile
    {
        private readonly byte[] _bytes = new byte[length];
        public bool NeverWaits => true;
        public string Path => "array";
        public bool ReadOnly => false;
        public long Length => _bytes.Length;
        public int Read(Span<byte> buffer, long offset)
        {
            lock (_bytes)
            {
                int n = (int)Math.Clamp(_bytes.Length - offset, 0, buffer.Length);
                _bytes.AsSpan((int)offset, n).CopyTo(buffer);
                return n;
            }
        }
        public void Write(ReadOnlySpan<byte> data, long offset)
        {
            lock (_bytes) data.CopyTo(_bytes.AsSpan((int)offset));
        }
        public bool TryReadNoWait(Span<byte> buffer, long offset, out int read) { read = Read(buffer, offset); return true; }
        public bool TryWriteNoWait(ReadOnlySpan<byte> data, long offset) { Write(data, offset); return true; }
        public void SetLength(long length) => throw new NotSupportedException();
        public void Flush() { }
        public BlkifStatus PunchHole(long offset, long length) => BlkifStatus.NotSupported;
        public void Dispose() { }
    }
}
