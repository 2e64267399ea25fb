using System.Collections.Concurrent;
using BlkTap.Xen;
using NUnit.Framework;

namespace BlkTap.Tests.XenBackend;

/// <summary>
/// The kernel side of the 2005 device, written for the tests: it plays blkfront (control messages, requests on the
/// fe ring with ids <c>(domid &lt;&lt; 16) | slot</c> and their data in the data area; consumes responses) and blkback
/// (consumes the be ring the tap produces when kicked, serves a model disk, answers).
/// </summary>
internal sealed unsafe class SimulatedBlktapKernel
{
    private readonly FakeBlktapDevice _device;
    private readonly FrontRing _fe;
    private readonly BackRing _be;
    private readonly object _feLock = new();
    private readonly Dictionary<ulong, BlkifResponse> _answers = new();
    private uint _ctrlReqProd;

    public SimulatedBlktapKernel(FakeBlktapDevice device, int diskSectors)
    {
        _device = device;
        _fe = new FrontRing(device.Base + BlktapDeviceAbi.FrontendRingPage * BlktapDeviceAbi.PageSize, BlktapDeviceAbi.PageSize, BlkifLayout.X86_64, initialiseShared: false);
        _be = new BackRing(device.Base + BlktapDeviceAbi.BackendRingPage * BlktapDeviceAbi.PageSize, BlktapDeviceAbi.PageSize, BlkifLayout.X86_64);
        Disk = new byte[diskSectors * 512L];
        device.OnKickBackend = ServeBackend;
    }

    /// <summary>The real backend's disk.</summary>
    public byte[] Disk { get; }

    /// <summary>Ids the backend saw on the be ring, in order.</summary>
    public ConcurrentQueue<ulong> BackendSaw { get; } = new();

    /// <summary>Sends a control message and waits for the tap's answer in the same slot.</summary>
    public BlktapControlMessage Control(BlktapControlMessage message)
    {
        byte* page = (byte*)_device.Base;
        uint entries = SharedRingLayout.EntryCount(BlktapDeviceAbi.PageSize, BlktapControlMessage.Size);
        uint slot = _ctrlReqProd & (entries - 1);
        message.Encode(new Span<byte>(page + SharedRingLayout.EntriesOffset + slot * BlktapControlMessage.Size, BlktapControlMessage.Size));
        _ctrlReqProd++;
        Interlocked.MemoryBarrier();
        Volatile.Write(ref *(uint*)(page + SharedRingLayout.ReqProd), _ctrlReqProd);
        _device.Raise();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref *(uint*)(page + SharedRingLayout.RspProd)) != _ctrlReqProd)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"the tap did not answer control message {message.Type}");
            Thread.Sleep(1);
        }
        Assert.That(BlktapControlMessage.TryDecode(new ReadOnlySpan<byte>(page + SharedRingLayout.EntriesOffset + slot * BlktapControlMessage.Size, BlktapControlMessage.Size), out var answer, out var error), Is.True, error);
        return answer;
    }

    /// <summary>The address of segment <paramref name="segment"/> of <paramref name="slot"/> in the data area.</summary>
    public Span<byte> DataPage(int slot, int segment) =>
        new((byte*)_device.Base + BlktapDeviceAbi.DataOffset(slot, segment), BlktapDeviceAbi.PageSize);

    /// <summary>Puts a read or write on the fe ring for (domid, slot): one segment per 4 KiB of data, sectors 0..7.</summary>
    public ulong Submit(ushort domid, int slot, BlkifOperation op, ulong sector, byte[] data)
    {
        Assert.That(data.Length % 4096, Is.EqualTo(0));
        int segments = data.Length / 4096;
        var request = new BlkifRequest { Operation = op, SegmentCount = segments, Handle = 0, Id = ((ulong)domid << 16) | (uint)slot, Sector = sector };
        for (int s = 0; s < segments; s++)
        {
            request.Segments[s] = new BlkifSegment(0, 0, 7);
            if (op != BlkifOperation.Read) data.AsSpan(s * 4096, 4096).CopyTo(DataPage(slot, s));
            else DataPage(slot, s).Clear();
        }
        SubmitRaw(in request);
        return request.Id;
    }

    /// <summary>Puts any request on the fe ring, as a hostile kernel could.</summary>
    public void SubmitRaw(in BlkifRequest request)
    {
        lock (_feLock)
        {
            _fe.EnqueueRequest(request);
            _fe.PushRequestsAndCheckNotify();
        }
        _device.Raise();
    }

    /// <summary>Writes req_prod directly (a kernel bug).</summary>
    public void CorruptRequestProducer(uint value)
    {
        Volatile.Write(ref *(uint*)(_device.Base + BlktapDeviceAbi.FrontendRingPage * BlktapDeviceAbi.PageSize + SharedRingLayout.ReqProd), value);
        _device.Raise();
    }

    /// <summary>Waits for the fe ring's response to <paramref name="id"/>.</summary>
    public BlkifResponse WaitResponse(ulong id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            lock (_feLock)
            {
                long n;
                while ((n = _fe.UnconsumedResponses()) > 0)
                    for (; n > 0; n--) { var r = _fe.TakeResponse(); _answers[r.Id] = r; }
                Assert.That(n, Is.Not.Negative, "the tap overran the fe ring's responses");
                if (_answers.Remove(id, out var answer)) return answer;
            }
            if (DateTime.UtcNow > deadline) Assert.Fail($"no response for id {id:x} on the fe ring");
            Thread.Sleep(1);
        }
    }

    /// <summary>blkback: called (from the tap's loop, in the KICK_BE ioctl) when the be ring has requests.</summary>
    private void ServeBackend()
    {
        long n;
        while ((n = _be.UnconsumedRequests()) > 0)
        {
            for (; n > 0; n--)
            {
                _be.TakeRequest(out var request);
                BackendSaw.Enqueue(request.Id);
                int slot = BlktapDeviceAbi.IdSlot(request.Id);
                long at = (long)request.Sector * 512;
                for (int s = 0; s < request.SegmentCount; s++)
                {
                    var seg = request.Segments[s];
                    var page = DataPage(slot, s).Slice(seg.PageOffset, seg.ByteCount);
                    if (request.Operation == BlkifOperation.Read) Disk.AsSpan((int)at, seg.ByteCount).CopyTo(page);
                    else page.CopyTo(Disk.AsSpan((int)at, seg.ByteCount));
                    at += seg.ByteCount;
                }
                _be.EnqueueResponse(new BlkifResponse(request.Id, request.Operation, BlkifStatus.Okay));
            }
        }
        _be.PushResponsesAndCheckNotify();
        _device.Raise();
    }
}
