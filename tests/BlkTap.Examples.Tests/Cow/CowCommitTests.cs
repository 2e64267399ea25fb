using BlkTap.Chains;
using BlkTap.Cli;
using BlkTap.Examples;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Examples.Tests.Cow;

/// <summary><c>blktap cow commit</c> and bad overlays: the base alone equals the model afterwards; corrupt or mismatched files are clear errors.</summary>
public class CowCommitTests
{
    private const int DiskBytes = 1 << 20;

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    [FsCheck.NUnit.Property(MaxTest = 12)]
    public Property Commit_ThenBaseAlone_EqualsModel() => Prop.ForAll(Gen.Choose(1, int.MaxValue - 1).ToArbitrary(), seed =>
    {
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", DiskBytes, seed);
        string ov = dir.File("ov.cow"), baseRaw = dir.File("base.raw");
        Task.Run(async () =>
        {
            await using var rig = await ChainRig.StartAsync([$"cow:overlay={ov}", $"img:path={baseRaw}"], deterministic: true, seed);
            await ModelWrites.RunAsync(rig, model, seed, 40, 100, 4);
        }).GetAwaiter().GetResult();
        var (code, _, err) = Cli("cow", "commit", ov, "--base", baseRaw);
        bool baseOk = File.ReadAllBytes(baseRaw).AsSpan().SequenceEqual(model);
        // The emptied overlay is still valid for the same base, and the disk through it is unchanged.
        byte[] through = Task.Run(async () =>
        {
            await using var rig = await ChainRig.StartAsync([$"cow:overlay={ov}", $"img:path={baseRaw}"], deterministic: true, seed);
            Assert.That(((CowTap)rig.Taps[0]).Overlay!.AllocatedSectors, Is.EqualTo(0UL));
            return await rig.ReadAllAsync();
        }).GetAwaiter().GetResult();
        if (code != 0) TestContext.Out.WriteLine($"seed {seed}: exit {code}: {err}");
        return code == 0 && err.Length == 0 && baseOk && through.AsSpan().SequenceEqual(model);
    });

    private static string MakeOverlay(TempDir dir)
    {
        dir.RandomImage("base.raw", DiskBytes, 1);
        string ov = dir.File("ov.cow");
        CowOverlay.OpenOrCreate(ov, DiskBytes, 65536).Dispose();
        return ov;
    }

    [FsCheck.NUnit.Property(MaxTest = 60)]
    public Property Commit_AnyHeaderByteCorrupted_ExitTwoWithOneClearLine() => Prop.ForAll(
        Gen.Choose(0, 63).ToArbitrary(), Gen.Choose(1, 255).ToArbitrary(), (offset, xor) =>
    {
        using var dir = new TempDir();
        string ov = MakeOverlay(dir);
        var bytes = File.ReadAllBytes(ov);
        bytes[offset] ^= (byte)xor;
        File.WriteAllBytes(ov, bytes);
        var (code, _, err) = Cli("cow", "commit", ov, "--base", dir.File("base.raw"));
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return code == 2 && lines.Length == 1 && lines[0].StartsWith("blktap: ") && lines[0].Contains(ov);
    });

    [Test]
    public void Commit_CorruptHeaderChecksum_SaysChecksum()
    {
        using var dir = new TempDir();
        string ov = MakeOverlay(dir);
        using (var f = File.OpenWrite(ov)) { f.Position = 20; f.WriteByte(0x55); }
        var (code, _, err) = Cli("cow", "commit", ov, "--base", dir.File("base.raw"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("checksum"));
    }

    [Test]
    public void Chain_CorruptOverlay_ChainSpecErrorNamingTheFile()
    {
        using var dir = new TempDir();
        string ov = MakeOverlay(dir);
        using (var f = File.OpenWrite(ov)) f.WriteByte((byte)'X');
        var ex = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().Build(
            [TapSpec.Parse($"cow:overlay={ov}"), TapSpec.Parse($"img:path={dir.File("base.raw")}")], new TapContext()));
        Assert.That(ex!.Message, Does.Contain("not a cow overlay").And.Contain(ov));
    }

    [Test]
    public void Commit_TruncatedOverlay_ExitTwo()
    {
        using var dir = new TempDir();
        string ov = MakeOverlay(dir);
        using (var f = new FileStream(ov, FileMode.Open)) f.SetLength(f.Length - 512);
        var (code, _, err) = Cli("cow", "commit", ov, "--base", dir.File("base.raw"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("truncated"));
    }

    [Test]
    public void Commit_BaseOfOtherSize_ExitTwoNamingBothSizes()
    {
        using var dir = new TempDir();
        string ov = MakeOverlay(dir);
        dir.RandomImage("other.raw", DiskBytes / 2, 2);
        var (code, _, err) = Cli("cow", "commit", ov, "--base", dir.File("other.raw"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain($"{DiskBytes / 2} bytes").And.Contain($"{DiskBytes} bytes"));
    }

    [Test]
    public void Commit_MissingOverlay_ExitTwo()
    {
        using var dir = new TempDir();
        var (code, _, err) = Cli("cow", "commit", dir.File("nope.cow"), "--base", dir.File("nope.raw"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("does not exist"));
    }

    [Test]
    public async Task Attach_OverlayForOtherBaseSize_RequestsFailWithDiagnostic()
    {
        using var dir = new TempDir();
        string ov = MakeOverlay(dir);
        dir.RandomImage("other.raw", DiskBytes * 2, 2);
        await using var rig = await ChainRig.StartAsync([$"cow:overlay={ov}", $"img:path={dir.File("other.raw")}"], deterministic: true);
        await rig.Execute(async () => Assert.That(await rig.Front.ReadAsync(0, new byte[512]), Is.EqualTo(BlkifStatus.Error)));
        Assert.That(string.Join("\n", rig.Diagnostics), Does.Contain("made for a base of"));
    }
}
