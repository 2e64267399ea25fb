using BlkTap.Examples.Qcow2;
using System.Buffers.Binary;
using BlkTap.Chains;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Qcow2;

/// <summary>
/// Bad qcow2 images are refused when the chain is built (a chain spec error, exit 2 in the CLI) with one line naming
/// the file and the problem, and nothing is written to them.
/// </summary>
public class Qcow2BadImageTests
{
    private static void Put32(byte[] b, int at, uint v) => BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at), v);
    private static void Put64(byte[] b, int at, ulong v) => BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(at), v);

    public static IEnumerable<TestCaseData> Damages()
    {
        yield return new TestCaseData((Func<byte[], byte[]>)(b => b[..50]), "truncated header").SetName("Open_TruncatedHeader_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put32(b, 0, 0x12345678); return b; }), "bad magic").SetName("Open_BadMagic_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put32(b, 4, 4); return b; }), "unsupported version 4").SetName("Open_Version4_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put32(b, 20, 8); return b; }), "cluster_bits 8 out of range").SetName("Open_ClusterBits8_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put32(b, 20, 22); return b; }), "cluster_bits 22 out of range").SetName("Open_ClusterBits22_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put64(b, 72, 1UL << 10); return b; }), "unknown incompatible feature bits 0x400").SetName("Open_UnknownIncompatibleBit_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put32(b, 32, 1); return b; }), "encrypted image").SetName("Open_Encrypted_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put64(b, 40, (ulong)b.Length * 4); return b; }), "L1 table at").SetName("Open_L1OutsideFile_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b => { Put64(b, 48, (ulong)b.Length * 4); return b; }), "refcount table at").SetName("Open_RefcountTableOutsideFile_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b =>
        {
            long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(40));
            Put64(b, (int)l1, ((ulong)b.Length * 8) | (1UL << 63));
            return b;
        }), "L1 entry 0").SetName("Open_L1EntryOutsideFile_Refused");
        yield return new TestCaseData((Func<byte[], byte[]>)(b =>
        {
            long rt = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(48));
            Put64(b, (int)rt, (ulong)b.Length * 8);
            return b;
        }), "refcount table entry 0").SetName("Open_RefcountBlockOutsideFile_Refused");
    }

    [TestCaseSource(nameof(Damages))]
    public void Open_DamagedHeader_RefusedNamingProblemAndNothingWritten(Func<byte[], byte[]> damage, string problem)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.qcow2");
        Qcow2Creator.Create(path, 1 << 20, 4096);
        var bytes = damage(File.ReadAllBytes(path));
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, $"qcow2:path={path}").Dispose())!;
        Assert.That(ex.Message, Does.Contain(problem).And.Contain(path).And.Not.Contain("\n"));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(bytes), "a refused image is not written");
    }

    [Test]
    public void Open_BackingChainLoops_RefusedNamingTheLoop()
    {
        var img = QemuImg.Img;
        using var dir = new TempDir();
        string a = dir.File("a.qcow2"), b = dir.File("b.qcow2");
        QemuImg.Create(b, 1 << 20, 65536);
        Peers.Run(img, ["create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a]).EnsureSuccess("create a");
        Peers.Run(img, ["rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", b]).EnsureSuccess("rebase b onto a");
        var before = File.ReadAllBytes(a);
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, $"qcow2:path={a}").Dispose())!;
        Assert.That(ex.Message, Does.Contain("backing chain loops").And.Contain("b.qcow2"));
        Assert.That(File.ReadAllBytes(a), Is.EqualTo(before));
    }

    [Test]
    public void Open_BackingFileMissing_RefusedNamingIt()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("base.raw"), new byte[1 << 20]);
        Qcow2Creator.Create(dir.File("top.qcow2"), null, 65536, "base.raw", "raw");
        File.Delete(dir.File("base.raw"));
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, $"qcow2:path={dir.File("top.qcow2")}").Dispose())!;
        Assert.That(ex.Message, Does.Contain("backing file 'base.raw' does not exist"));
    }

    [Test]
    public async Task Read_L2EntryOutsideFile_RequestFailsAndFileUntouched()
    {
        var io = QemuImg.Io;
        using var dir = new TempDir();
        string path = dir.File("l2.qcow2");
        QemuImg.Create(path, 1 << 20, 4096);
        Peers.Run(io, ["-c", "write -P 0x11 0 4k", path]).EnsureSuccess("qemu-io write");
        // Point the first L2 entry far past the end of the file.
        var bytes = File.ReadAllBytes(path);
        long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(40));
        long l2 = (long)(BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan((int)l1)) & 0x00FF_FFFF_FFFF_FE00);
        Put64(bytes, (int)l2, ((ulong)bytes.Length * 16 & ~4095UL) | (1UL << 63));
        File.WriteAllBytes(path, bytes);
        await using (var rig = await ChainRig.StartAsync([$"qcow2:path={path},readonly=true"], deterministic: true))
        {
            await rig.Execute(async () => Assert.That(await rig.Front.ReadAsync(0, new byte[4096]), Is.EqualTo(BlkifStatus.Error)));
            Assert.That(string.Join("\n", rig.Diagnostics), Does.Contain("points outside the file"));
        }
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(bytes));
    }

    [Test]
    public void OpenWritable_DirtyBit_RefusedReadOnlyAllowed()
    {
        using var dir = new TempDir();
        string path = dir.File("dirty.qcow2");
        Qcow2Creator.Create(path, 1 << 20, 4096);
        var bytes = File.ReadAllBytes(path);
        Put64(bytes, 72, 1);
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, $"qcow2:path={path}").Dispose())!;
        Assert.That(ex.Message, Does.Contain("dirty"));
        Assert.DoesNotThrow(() => ChainRig.Build(null, $"qcow2:path={path},readonly=true").Dispose());
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(bytes));
    }
}
