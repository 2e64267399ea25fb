using BlkTap.Testing;
using BlkTap.Xen;
using BlkTap.Xen.Internal;
using BlkTap.Xen.Interop;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>The 2005 /dev/blktap constants and layout helpers, against the 2005 driver's source, and the grant status mapping.</summary>
[TestFixture]
public class BlktapDeviceAbiTests
{
    [Test]
    public void Constants_MatchThe2005DriverSource()
    {
        Assert.Multiple(() =>
        {
            // blktap.h
            Assert.That((BlktapDeviceAbi.IoctlKickFe, BlktapDeviceAbi.IoctlKickBe, BlktapDeviceAbi.IoctlSetMode, BlktapDeviceAbi.IoctlPrintIndexes), Is.EqualTo((1u, 2u, 3u, 100u)));
            Assert.That(new[] { BlktapDeviceAbi.ModePassthrough, BlktapDeviceAbi.ModeInterceptFe, BlktapDeviceAbi.ModeInterceptBe, BlktapDeviceAbi.ModeCopyFe,
                BlktapDeviceAbi.ModeCopyBe, BlktapDeviceAbi.ModeCopyFePages, BlktapDeviceAbi.ModeCopyBePages, BlktapDeviceAbi.ModeInterpose },
                Is.EqualTo(new uint[] { 0, 1, 2, 4, 8, 0x10, 0x20, 3 }));
            Assert.That(BlktapDeviceAbi.MiscMinor, Is.EqualTo(202));
            Assert.That(BlktapDeviceAbi.DefaultDevicePath, Is.EqualTo("/dev/blktap"));
            // blktap_userdev.c: MAX_PENDING_REQS 64, MMAP_PAGES_PER_REQUEST 12, RING_PAGES 3, exactly 771 pages.
            Assert.That(BlktapDeviceAbi.MappingLength, Is.EqualTo(771L * 4096));
            Assert.That(BlktapDeviceAbi.DataPage(0, 0), Is.EqualTo(3));
            Assert.That(BlktapDeviceAbi.DataPage(2, 5), Is.EqualTo(3 + 2 * 12 + 5));
            Assert.That(BlktapDeviceAbi.DataPage(63, 10), Is.EqualTo(769), "page 770, the 12th of slot 63, is never used: MMAP_PAGES_PER_REQUEST = 11 + 1");
            Assert.That((BlktapDeviceAbi.ControlRingPage, BlktapDeviceAbi.BackendRingPage, BlktapDeviceAbi.FrontendRingPage), Is.EqualTo((0, 1, 2)));
            // blkif.h 2005
            Assert.That((Blkif2005.OpRead, Blkif2005.OpWrite, Blkif2005.OpProbe), Is.EqualTo(((byte)0, (byte)1, (byte)2)));
            Assert.That((Blkif2005.StatusOkay, Blkif2005.StatusError), Is.EqualTo(((short)0, (short)-1)));
            Assert.That(Blkif2005.TapCookie, Is.EqualTo(0xbeadfeedu));
        });
    }

    [TestCase(0u, true)]
    [TestCase(1u, true)]
    [TestCase(2u, true)]
    [TestCase(3u, true)]
    [TestCase(4u, true)]
    [TestCase(0x14u, true)]
    [TestCase(8u, true)]
    [TestCase(0x28u, true)]
    [TestCase(0xCu, true)]
    [TestCase(0x3Cu, true)]
    [TestCase(5u, false)]
    [TestCase(0x10u, false)]
    [TestCase(0x40u, false)]
    [TestCase(0x7u, false)]
    public void IsValidMode_AsBlktapModeValid_AcceptsOnlyItsModes(uint mode, bool valid) =>
        Assert.That(BlktapDeviceAbi.IsValidMode(mode), Is.EqualTo(valid));

    [Test]
    public void Layouts_BothBuilds_MatchStructDefinitionsByHand()
    {
        // blkif_request_t { u8 op; u8 nr; u16 device; unsigned long id; u64 sector; unsigned long fas[11]; }
        var l64 = Blkif2005Layout.X86_64;
        var l32 = Blkif2005Layout.X86_32;
        Assert.Multiple(() =>
        {
            Assert.That((l64.IdOffset, l64.SectorOffset, l64.FrameAndSectsOffset, l64.RequestSize), Is.EqualTo((8, 16, 24, 112)));
            Assert.That((l64.ResponseOperationOffset, l64.ResponseStatusOffset, l64.ResponseSize, l64.RingEntries), Is.EqualTo((8, 10, 16, 32u)));
            Assert.That((l32.IdOffset, l32.SectorOffset, l32.FrameAndSectsOffset, l32.RequestSize), Is.EqualTo((4, 8, 16, 60)));
            Assert.That((l32.ResponseOperationOffset, l32.ResponseStatusOffset, l32.ResponseSize, l32.RingEntries), Is.EqualTo((4, 6, 8, 64u)));
            // ring.h 2005: 8-byte header; control ring of 64-byte control_msg_t in a page: 32 (CONTROL_RING_MEM 520: 8).
            Assert.That(Blkif2005.RingEntries(4096, BlktapControlMessage.Size), Is.EqualTo(32u));
            Assert.That(Blkif2005.RingEntries(520, BlktapControlMessage.Size), Is.EqualTo(8u));
        });
    }

    [TestCase(64)]
    [TestCase(32)]
    public void Layouts_CompiledWithGcc_MatchOffsetsSizesAndRingSize(int bits)
    {
        // The 2005 structs transcribed from blkif.h / ring.h / domain_controller.h of 2005 (field types and order),
        // compiled for each build with this project's numbers as static assertions: gcc, not this project, lays
        // them out, and nothing has to run (a 32-bit program may not execute on the test machine).
        var l = bits == 64 ? Blkif2005Layout.X86_64 : Blkif2005Layout.X86_32;
        var checks = new (string C, long Value)[]
        {
            ("offsetof(req2005, id)", l.IdOffset), ("offsetof(req2005, sector_number)", l.SectorOffset),
            ("offsetof(req2005, frame_and_sects)", l.FrameAndSectsOffset), ("sizeof(unsigned long)", l.WordSize),
            ("sizeof(req2005)", l.RequestSize), ("offsetof(rsp2005, operation)", l.ResponseOperationOffset),
            ("offsetof(rsp2005, status)", l.ResponseStatusOffset), ("sizeof(rsp2005)", l.ResponseSize),
            ("sizeof(union entry2005)", l.EntrySize), ("offsetof(struct sring2005, ring)", Blkif2005.RingHeaderSize),
            ("RD32((4096 - 2 * sizeof(unsigned int)) / sizeof(union entry2005))", l.RingEntries),
            ("RD32((4096 - 2 * sizeof(unsigned int)) / sizeof(ctrl2005))", 32),
            ("sizeof(ctrl2005)", BlktapControlMessage.Size), ("offsetof(ctrl2005, msg)", BlktapControlMessage.PayloadOffset),
            ("offsetof(vbd_create2005, blkif_handle)", 4), ("offsetof(vbd_create2005, pdevice)", 8),
            ("offsetof(vbd_create2005, vdevice)", 16), ("offsetof(vbd_create2005, readonly)", 18),
            ("sizeof(vdisk2005)", Blkif2005Vdisk.Size), ("offsetof(vdisk2005, device)", 8),
            ("offsetof(vdisk2005, info)", 10), ("offsetof(vdisk2005, sector_size)", 12),
        };
        const string structs = """
            #include <stdint.h>
            #include <stddef.h>
            typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64; typedef int16_t s16;
            typedef struct { u8 operation; u8 nr_segments; u16 device; unsigned long id; u64 sector_number;
                             unsigned long frame_and_sects[11]; } req2005;
            typedef struct { unsigned long id; u8 operation; s16 status; } rsp2005;
            union entry2005 { req2005 req; rsp2005 rsp; };
            struct sring2005 { unsigned int req_prod; unsigned int rsp_prod; union entry2005 ring[1]; };
            typedef struct { u8 type; u8 subtype; u8 id; u8 length; u8 msg[60]; } ctrl2005;
            typedef struct { u16 domid; u32 blkif_handle; u32 pdevice; u32 dev_handle; u16 vdevice; u16 readonly; u32 status; } vbd_create2005;
            typedef struct { u64 capacity; u16 device; u16 info; u16 sector_size; } vdisk2005;
            #define RD2(x)  (((x) & 0x2) ? 0x2 : ((x) & 0x1))
            #define RD4(x)  (((x) & 0xc) ? RD2((x) >> 2) << 2 : RD2(x))
            #define RD8(x)  (((x) & 0xf0) ? RD4((x) >> 4) << 4 : RD4(x))
            #define RD16(x) (((x) & 0xff00) ? RD8((x) >> 8) << 8 : RD8(x))
            #define RD32(x) (((x) & 0xffff0000) ? RD16((x) >> 16) << 16 : RD16(x))

            """;
        var source = structs + string.Concat(checks.Select(c => $"_Static_assert({c.C} == {c.Value}, \"{c.C} != {c.Value}\");\n"))
            + "int main(void) { return 0; }\n";
        Peers.Require("gcc");
        try { NativeProgram.Compile(source, $"blkif2005_m{bits}", $"-m{bits}"); }
        catch (Exception ex) when (bits == 32 && ex.Message.Contains("gnu/stubs-32.h") && !Peers.Required)
        {
            Assert.Ignore("gcc -m32 has no 32-bit headers; install gcc-multilib");
        }
    }

    [Test]
    public void FrameAndSects_GrantBuildEncoding_PutsGrantAbove16AndSectorsIn5BitFields()
    {
        ulong fas = Blkif2005.MakeFrameAndSects(0x1234, 3, 7);
        Assert.That(fas, Is.EqualTo((0x1234UL << 16) | (3 << 5) | 7));
        Assert.That((Blkif2005.GrantRef(fas), Blkif2005.FirstSector(fas), Blkif2005.LastSector(fas)), Is.EqualTo((0x1234u, (byte)3, (byte)7)));
    }

    [FsCheck.NUnit.Property]
    public Property Request_EncodeDecode_RoundTripsOnBothBuilds(byte op, byte nr, ushort dev, uint id, ulong sector, uint[] grants, bool x64)
    {
        var layout = x64 ? Blkif2005Layout.X86_64 : Blkif2005Layout.X86_32;
        var r = new Blkif2005Request { Operation = op, SegmentCount = nr, Device = dev, Id = id, Sector = sector };
        for (int s = 0; s < Math.Min(grants.Length, 11); s++) r.FrameAndSects[s] = Blkif2005.MakeFrameAndSects(grants[s] & 0xFFFF, (byte)(s % 8), 7);
        var bytes = new byte[layout.RequestSize];
        r.Encode(bytes, layout);
        var back = Blkif2005Request.Decode(bytes, layout);
        bool same = back.Operation == op && back.SegmentCount == nr && back.Device == dev && back.Id == id && back.Sector == sector;
        for (int s = 0; s < 11; s++) same &= back.FrameAndSects[s] == r.FrameAndSects[s];
        // The id sits at the build's offset, little-endian.
        same &= BitConverter.ToUInt32(bytes, layout.IdOffset) == id && BitConverter.ToUInt64(bytes, layout.SectorOffset) == sector;
        return same.ToProperty();
    }

    [FsCheck.NUnit.Property]
    public Property Response_EncodeDecode_RoundTripsOnBothBuilds(uint id, byte op, short status, bool x64)
    {
        var layout = x64 ? Blkif2005Layout.X86_64 : Blkif2005Layout.X86_32;
        var bytes = new byte[layout.ResponseSize];
        new Blkif2005Response(id, op, status).Encode(bytes, layout);
        return (Blkif2005Response.Decode(bytes, layout) == new Blkif2005Response(id, op, status)
            && bytes[layout.ResponseOperationOffset] == op && BitConverter.ToInt16(bytes, layout.ResponseStatusOffset) == status).ToProperty();
    }

    [Test]
    public void ControlMessage_VbdCreate_EncodesPayloadAtDomainControllerOffsets()
    {
        var bytes = new byte[64];
        BlktapControlMessage.VbdCreate(7, 0, 0x0301, readOnly: true, pdevice: 0x0802).Encode(bytes);
        Assert.Multiple(() =>
        {
            Assert.That(bytes[..4], Is.EqualTo(new byte[] { 1, 4, 0, 24 }), "type CMSG_BLKIF_BE, subtype VBD_CREATE, id, length");
            Assert.That(BitConverter.ToUInt16(bytes, 4), Is.EqualTo(7), "domid @msg+0");
            Assert.That(BitConverter.ToUInt32(bytes, 4 + 8), Is.EqualTo(0x0802u), "pdevice @msg+8");
            Assert.That(BitConverter.ToUInt16(bytes, 4 + 16), Is.EqualTo(0x0301), "vdevice @msg+16");
            Assert.That(BitConverter.ToUInt16(bytes, 4 + 18), Is.EqualTo(1), "readonly @msg+18");
            var m = BlktapControlMessage.Decode(bytes);
            Assert.That((m.Domain, m.VirtualDevice, m.ReadOnly, m.PhysicalDevice), Is.EqualTo(((ushort)7, (ushort)0x0301, true, 0x0802u)));
        });
    }

    [FsCheck.NUnit.Property]
    public Property Id_MakeId_MasksSlotTo63AndKeepsDomain(ushort domid, ushort slot)
    {
        uint id = BlktapDeviceAbi.MakeId(domid, slot);
        return (id == (((uint)domid << 16) | (slot & 63u)) && BlktapDeviceAbi.IdDomain(id) == domid && BlktapDeviceAbi.IdSlot(id) == (slot & 63)).ToProperty();
    }

    [FsCheck.NUnit.Property]
    public Property DataPage_DistinctSlotSegment_NeverShareAPageOrTouchRings(byte slotA, byte segA, byte slotB, byte segB)
    {
        int sa = slotA % 64, sb = slotB % 64, ga = segA % 11, gb = segB % 11;
        long a = BlktapDeviceAbi.DataPage(sa, ga), b = BlktapDeviceAbi.DataPage(sb, gb);
        return (a >= BlktapDeviceAbi.RingPages && (a == b) == (sa == sb && ga == gb) && a * 4096 < BlktapDeviceAbi.MappingLength).ToProperty();
    }

    [TestCase(-1, 0)]
    [TestCase(64, 0)]
    [TestCase(0, 11)]
    [TestCase(0, -1)]
    public void DataPage_OutOfRange_ThrowsNamingTheArgument(int slot, int segment)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => BlktapDeviceAbi.DataPage(slot, segment));
        Assert.That(ex!.ParamName, Is.EqualTo(slot is < 0 or > 63 ? "slot" : "segment"));
    }

    [TestCase(GrantTableConstants.GNTST_okay, GrantStatus.Okay)]
    [TestCase(GrantTableConstants.GNTST_bad_domain, GrantStatus.NoSuchDomain)]
    [TestCase(GrantTableConstants.GNTST_bad_gntref, GrantStatus.NotGranted)]
    [TestCase(GrantTableConstants.GNTST_permission_denied, GrantStatus.ReadOnly)]
    [TestCase(GrantTableConstants.GNTST_general_error, GrantStatus.Failed)]
    [TestCase(GrantTableConstants.GNTST_no_space, GrantStatus.Failed)]
    [TestCase(GrantTableConstants.GNTST_eagain, GrantStatus.Failed)]
    public void FromGntst_KnownCode_MapsToGrantStatus(short gntst, GrantStatus expected) =>
        Assert.That(GrantStatusMapping.FromGntst(gntst), Is.EqualTo(expected));

    [FsCheck.NUnit.Property]
    public Property FromGntst_AnyCode_IsOkayOnlyForZero(short gntst) =>
        ((GrantStatusMapping.FromGntst(gntst) == GrantStatus.Okay) == (gntst == 0)).ToProperty();
}
