using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.XenLab;

/// <summary>
/// tools/xenlab/workload/verify, the program the Xen lab runs inside a domU on /dev/xvda, built here with its own
/// build.sh (static, -Wall -Wextra -Werror) and run on regular files and, where this machine can make one, a loop
/// device. Its SHA-256 is checked against coreutils' sha256sum and .NET's; its digests against the file afterwards.
/// A missing gcc or libc.a fails in CI and ignores locally (<see cref="Peers.Required"/>).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed partial class VerifyWorkloadTests
{
    private const string Libc = "/usr/lib/x86_64-linux-gnu/libc.a";
    private static readonly Lazy<string> Built = new(Build);
    private static readonly Lazy<bool> DirectWorks = new(ProbeDirect);
    private string _dir = null!;

    [GeneratedRegex(@"^XENLAB-VERIFY ok seed=(\d+) ops=(\d+) reads=(\d+) writes=(\d+) flushes=(\d+) discards=(\d+) discard_unsupported=(\d+) bytes=(\d+) initial=([0-9a-f]{64}) digest=([0-9a-f]{64})$", RegexOptions.Multiline)]
    private static partial Regex OkLine();

    [GeneratedRegex(@"^XENLAB-BENCH mode=(\S+) ops=(\d+) bytes=(\d+) seconds=(\d+\.\d{3}) iops=(\d+\.\d) mib_s=(\d+\.\d\d)$", RegexOptions.Multiline)]
    private static partial Regex BenchLine();

    [GeneratedRegex(@"^XENLAB-DIGEST ([0-9a-f]{64}) bytes=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex DigestLine();

    /// <summary>One result of <c>verify run</c>.</summary>
    private sealed record RunResult(ulong Reads, ulong Writes, ulong Flushes, ulong Discards, ulong DiscardUnsupported, ulong Bytes, string Initial, string Digest);

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("blktap-xenlab-").FullName;

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static string RepoRoot
    {
        get
        {
            for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "BlkTapSim.sln"))) return d.FullName;
            throw new InvalidOperationException("BlkTapSim.sln not found above the test directory");
        }
    }

    /// <summary>tools/xenlab/workload/build.sh into a temporary directory, once per test run.</summary>
    private static string Verify()
    {
        Peers.Require("gcc", "apt-get install gcc");
        Peers.RequireFile(Libc, "apt-get install libc6-dev");
        return Built.Value;
    }

    private static string Build()
    {
        var outDir = Directory.CreateTempSubdirectory("blktap-xenlab-verify-").FullName;
        var script = Path.Combine(RepoRoot, "tools", "xenlab", "workload", "build.sh");
        Peers.Run("bash", [script, outDir], TimeSpan.FromMinutes(5)).EnsureSuccess("tools/xenlab/workload/build.sh");
        var exe = Path.Combine(outDir, "verify");
        Assert.That(File.Exists(exe), Is.True, "build.sh wrote OUTDIR/verify");
        return exe;
    }

    /// <summary>Whether the temporary directory's filesystem takes O_DIRECT (tmpfs before Linux 6.6 does not).</summary>
    private static bool ProbeDirect()
    {
        var dir = Directory.CreateTempSubdirectory("blktap-xenlab-probe-").FullName;
        try
        {
            var file = Path.Combine(dir, "probe.raw");
            File.WriteAllBytes(file, new byte[4096]);
            var r = Peers.Run(Verify(), ["digest", "--dev", file]);
            if (r.ExitCode == 0) return true;
            Assert.That(r.ExitCode == 2 && r.StdErr.Contains("O_DIRECT", StringComparison.Ordinal), Is.True,
                $"verify digest on a 4 KiB file: exit {r.ExitCode}\n{r.StdOut}{r.StdErr}");
            return false;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>--no-direct where the temporary directory's filesystem refuses O_DIRECT; nothing otherwise.</summary>
    private static string[] DirectArgs => DirectWorks.Value ? [] : ["--no-direct"];

    private byte[] RandomImage(string name, int bytes, int seed)
    {
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        File.WriteAllBytes(Path.Combine(_dir, name), data);
        return data;
    }

    private static ProcessResult Run(params string[] args) => Peers.Run(Verify(), args, TimeSpan.FromMinutes(2));

    private static RunResult RunOk(string dev, ulong seed, int ops, params string[] extra)
    {
        var r = Run(["run", "--dev", dev, "--seed", seed.ToString(CultureInfo.InvariantCulture), "--ops", ops.ToString(CultureInfo.InvariantCulture), .. DirectArgs, .. extra]);
        Assert.That(r.ExitCode, Is.EqualTo(0), $"verify run exited {r.ExitCode}\n{r.StdOut}{r.StdErr}");
        return ParseOk(r.StdOut, seed, ops);
    }

    private static RunResult ParseOk(string stdout, ulong seed, int ops)
    {
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Count(l => l.StartsWith("XENLAB-VERIFY ok ", StringComparison.Ordinal)), Is.EqualTo(1), "exactly one result line:\n" + stdout);
        Assert.That(lines.All(l => l.StartsWith("XENLAB-VERIFY progress ", StringComparison.Ordinal) || l.StartsWith("XENLAB-VERIFY ok ", StringComparison.Ordinal)), Is.True,
            "only progress lines besides the result:\n" + stdout);
        Assert.That(lines[^1], Does.StartWith("XENLAB-VERIFY ok "), "the result line comes last");
        Assert.That(lines.Length, Is.LessThanOrEqualTo(9), "progress lines are sparse");
        var m = OkLine().Match(stdout);
        Assert.That(m.Success, Is.True, "result line format:\n" + stdout);
        ulong G(int i) => ulong.Parse(m.Groups[i].Value, CultureInfo.InvariantCulture);
        Assert.That(G(1), Is.EqualTo(seed));
        Assert.That(G(2), Is.EqualTo((ulong)ops));
        var result = new RunResult(G(3), G(4), G(5), G(6), G(7), G(8), m.Groups[9].Value, m.Groups[10].Value);
        Assert.That(result.Reads + result.Writes + result.Flushes + result.Discards + result.DiscardUnsupported, Is.EqualTo((ulong)ops), "every op is counted once");
        return result;
    }

    private static string Sha256Hex(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private static string Sha256Hex(string file)
    {
        using var s = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>Every 512-byte sector that starts with the marker names this seed and its own sector number.</summary>
    private static int CheckMarkers(byte[] image, ulong seed)
    {
        var marker = "XENLAB-DATA s="u8;
        int count = 0;
        for (int off = 0; off + 512 <= image.Length; off += 512)
        {
            if (!image.AsSpan(off).StartsWith(marker)) continue;
            count++;
            var header = Encoding.ASCII.GetString(image, off, 64);
            Assert.That(header, Does.Match(@"^XENLAB-DATA s=[0-9a-f]{16} n=[0-9a-f]{12} g=[0-9a-f]{8} {7}\n$"), $"header at byte {off}");
            Assert.That(ulong.Parse(header.AsSpan(14, 16), NumberStyles.HexNumber, CultureInfo.InvariantCulture), Is.EqualTo(seed), $"seed field at byte {off}");
            Assert.That(long.Parse(header.AsSpan(33, 12), NumberStyles.HexNumber, CultureInfo.InvariantCulture), Is.EqualTo(off / 512), $"sector field at byte {off}");
        }
        return count;
    }

    /// <summary>The domU has no libc: build.sh must give a static x86_64 ELF (no PT_INTERP program header).</summary>
    [Test]
    public void BuildScript_Run_WritesStaticX86_64Executable()
    {
        var elf = File.ReadAllBytes(Verify());
        Assert.That(elf.AsSpan(0, 4).SequenceEqual("\u007fELF"u8), Is.True, "ELF magic");
        Assert.That(elf[4], Is.EqualTo(2), "ELFCLASS64");
        Assert.That(BitConverter.ToUInt16(elf, 0x12), Is.EqualTo(0x3E), "EM_X86_64");
        long phoff = BitConverter.ToInt64(elf, 0x20);
        int phentsize = BitConverter.ToUInt16(elf, 0x36), phnum = BitConverter.ToUInt16(elf, 0x38);
        Assert.That(phnum, Is.GreaterThan(0));
        for (int i = 0; i < phnum; i++)
            Assert.That(BitConverter.ToUInt32(elf, (int)phoff + i * phentsize), Is.Not.EqualTo(3u), "a PT_INTERP header means a dynamic executable");
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(55)]
    [TestCase(56)]
    [TestCase(63)]
    [TestCase(64)]
    [TestCase(65)]
    [TestCase(1000)]
    [TestCase(1 << 20)]
    [TestCase((1 << 20) + 4097)]
    public void Digest_FileOfEdgeLength_EqualsSha256sumAndDotnet(int length)
    {
        var data = RandomImage("f.bin", length, length);
        var file = Path.Combine(_dir, "f.bin");
        var sha256sum = Peers.Run(Peers.Require("sha256sum", "apt-get install coreutils"), [file]).EnsureSuccess("sha256sum");
        var expected = sha256sum.StdOut.Split(' ')[0];
        Assert.That(expected, Is.EqualTo(Sha256Hex(data)), "sha256sum and .NET agree");
        foreach (var direct in new[] { DirectArgs, ["--no-direct"] })
        {
            var r = Run(["digest", "--dev", file, .. direct]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.StdOut + r.StdErr);
            var m = DigestLine().Match(r.StdOut);
            Assert.That(m.Success, Is.True, r.StdOut);
            Assert.That(m.Groups[1].Value, Is.EqualTo(expected), $"{length} bytes {string.Join(' ', direct)}");
            Assert.That(m.Groups[2].Value, Is.EqualTo(length.ToString(CultureInfo.InvariantCulture)));
        }
    }

    [Test]
    public void Run_SixMiBFile_ExitsZeroDigestEqualsFileSha256AndMarkersWritten()
    {
        const ulong seed = 11;
        var original = RandomImage("disk.raw", 6 << 20, 1);
        var disk = Path.Combine(_dir, "disk.raw");
        var r = RunOk(disk, seed, 2000);
        var image = File.ReadAllBytes(disk);
        Assert.That(r.Initial, Is.EqualTo(Sha256Hex(original)), "initial= is the SHA-256 of the content before the run");
        Assert.That(r.Digest, Is.EqualTo(Sha256Hex(image)), "digest= is the SHA-256 of the file after the run");
        Assert.That(r.Bytes, Is.EqualTo((ulong)image.Length));
        Assert.That(r.Reads, Is.GreaterThan(600));
        Assert.That(r.Writes, Is.GreaterThan(600));
        Assert.That(r.Flushes, Is.GreaterThan(50));
        Assert.That(r.Discards + r.DiscardUnsupported, Is.GreaterThan(50));
        Assert.That(image.AsSpan().IndexOf("XENLAB-DATA"u8), Is.GreaterThanOrEqualTo(0), "the image holds the plaintext marker");
        Assert.That(CheckMarkers(image, seed), Is.GreaterThan(1000), "written sectors carry the marker header");
    }

    [Test]
    public void Run_SecondRunExpectingFirstDigest_PassesAndKeepsState()
    {
        RandomImage("disk.raw", 4 << 20, 2);
        var disk = Path.Combine(_dir, "disk.raw");
        var first = RunOk(disk, 21, 800);
        var second = RunOk(disk, 22, 800, "--expect-initial", first.Digest.ToUpperInvariant());
        Assert.That(second.Initial, Is.EqualTo(first.Digest), "the second run found what the first left");
        Assert.That(second.Digest, Is.EqualTo(Sha256Hex(disk)));
        Assert.That(second.Digest, Is.Not.EqualTo(first.Digest), "the second run wrote too");
    }

    [Test]
    public void Run_ByteFlippedBeforeExpectInitial_ExitsOneWithFailLine()
    {
        RandomImage("disk.raw", 4 << 20, 3);
        var disk = Path.Combine(_dir, "disk.raw");
        var first = RunOk(disk, 31, 500);
        using (var f = File.Open(disk, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = 3_000_001;
            int b = f.ReadByte();
            f.Position = 3_000_001;
            f.WriteByte((byte)(b ^ 0x01));
        }
        var r = Run(["run", "--dev", disk, "--seed", "32", "--ops", "100", "--expect-initial", first.Digest, .. DirectArgs]);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.StdOut + r.StdErr);
        Assert.That(r.StdOut, Does.Contain($"XENLAB-VERIFY FAIL initial digest {Sha256Hex(disk)} differs from --expect-initial {first.Digest}"));
        Assert.That(r.StdOut, Does.Not.Contain("XENLAB-VERIFY ok"));
    }

    /// <summary>
    /// Proves the read check can fail: while the workload runs, another writer keeps overwriting its small region
    /// with fresh random bytes until the workload exits, so it reads bytes its model does not hold and names the
    /// offset. The writer starts before the workload and stops only when it has exited, so how the two are scheduled
    /// on a busy machine changes when the mismatch is seen, never whether (the op count is far more than a run that
    /// fails needs: it stops at the first mismatch).
    /// </summary>
    [Test]
    public void Run_ConcurrentWriterOnItsRegion_ReadMismatchFailsWithOffset()
    {
        RandomImage("disk.raw", 4 << 20, 4);
        var disk = Path.Combine(_dir, "disk.raw");
        const int Region = 256 << 10;
        using var stop = new CancellationTokenSource();
        long overwrites = 0;
        var writer = Task.Run(() =>
        {
            var rng = new Random(43);
            var block = new byte[4096];
            using var f = new FileStream(disk, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            while (!stop.IsCancellationRequested)
            {
                rng.NextBytes(block);
                f.Position = rng.Next(Region / block.Length) * block.Length;
                f.Write(block);
                f.Flush();
                Interlocked.Increment(ref overwrites);
            }
        });
        SpinWait.SpinUntil(() => Interlocked.Read(ref overwrites) > 0 || writer.IsCompleted, TimeSpan.FromMinutes(1));
        ProcessResult r;
        try
        {
            r = Run(["run", "--dev", disk, "--seed", "41", "--ops", "400000", "--region", "256K", .. DirectArgs]);
        }
        finally
        {
            stop.Cancel();
            writer.Wait(TimeSpan.FromMinutes(1));
        }
        Assert.That(r.ExitCode, Is.EqualTo(1), $"exit {r.ExitCode} after {Interlocked.Read(ref overwrites)} overwrites: {r.StdOut}{r.StdErr}");
        Assert.That(r.StdOut, Does.Match(@"XENLAB-VERIFY FAIL (op \d+ read of \d+ bytes at \d+|final read): mismatch at byte offset \d+ \(sector \d+\): expected 0x[0-9a-f]{2} got 0x[0-9a-f]{2}; .*; the model is intact \(it hashes as when stored\); a re-read "));
        Assert.That(r.StdOut, Does.Not.Contain("XENLAB-VERIFY ok"));
    }

    /// <summary>
    /// A model byte changed in the workload's own memory (as guest memory corruption would) is told apart from a
    /// device that answered wrongly: the FAIL line says the model changed and that the device answers the same again.
    /// </summary>
    [TestCase(0L)]
    [TestCase(1_050_000L)]
    [TestCase((4L << 20) - 1)]
    public void Run_ModelByteCorruptedInMemory_FailLineBlamesTheModelNotTheDevice(long modelByte)
    {
        RandomImage("disk.raw", 4 << 20, 6);
        var disk = Path.Combine(_dir, "disk.raw");
        var before = File.ReadAllBytes(disk);
        var r = Peers.Run(Verify(), ["run", "--dev", disk, "--seed", "61", "--ops", "50", .. DirectArgs], TimeSpan.FromMinutes(2),
            environment: new Dictionary<string, string> { ["XENLAB_VERIFY_TEST_CORRUPT_MODEL_BYTE"] = modelByte.ToString(CultureInfo.InvariantCulture) });
        Assert.That(r.ExitCode, Is.EqualTo(1), r.StdOut + r.StdErr);
        long sector = modelByte / 512;
        Assert.That(r.StdOut, Does.Match($@"XENLAB-VERIFY FAIL .*mismatch at byte offset {modelByte} \(sector {sector}\).*; the MODEL CHANGED in this domU's memory since it was stored \(guest memory corruption, not a device answer\); a re-read returns the same bytes as this read"));
        Assert.That(r.StdOut, Does.Not.Contain("XENLAB-VERIFY ok"));
        Assert.That(before.Length, Is.EqualTo(new FileInfo(disk).Length), "the file keeps its size");
    }

    /// <summary>For any seed and region, digest= is the file's SHA-256 and nothing beyond the region changed.</summary>
    [FsCheck.NUnit.Property(MaxTest = 8, QuietOnSuccess = true)]
    public void Run_AnySeedAndRegion_DigestEqualsFileSha256OutsideRegionUntouched(ulong seed, byte regionPick)
    {
        var dir = Directory.CreateTempSubdirectory("blktap-xenlab-prop-").FullName;
        try
        {
            var disk = Path.Combine(dir, "disk.raw");
            var original = new byte[4 << 20];
            new Random(unchecked((int)seed)).NextBytes(original);
            File.WriteAllBytes(disk, original);
            int region = (regionPick % 64 + 1) * (64 << 10);
            var r = RunOk(disk, seed, 300, "--region", region.ToString(CultureInfo.InvariantCulture));
            var image = File.ReadAllBytes(disk);
            Assert.That(r.Initial, Is.EqualTo(Sha256Hex(original)));
            Assert.That(r.Digest, Is.EqualTo(Sha256Hex(image)), $"seed {seed} region {region}");
            Assert.That(image.AsSpan(region).SequenceEqual(original.AsSpan(region)), Is.True, $"bytes beyond --region {region} unchanged");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase("", "missing command")]
    [TestCase("frobnicate", "unknown command 'frobnicate'")]
    [TestCase("run --dev {disk} --ops 10", "missing --seed")]
    [TestCase("run --dev {disk} --seed 1", "missing --ops")]
    [TestCase("run --seed 1 --ops 10", "missing --dev")]
    [TestCase("run --dev {disk} --seed 1 --ops 10 --bogus", "unknown option '--bogus'")]
    [TestCase("run --dev {disk} --seed 1 --ops ten", "--ops ten")]
    [TestCase("run --dev {disk} --seed 1 --ops 10 --qd 4", "only --qd 1")]
    [TestCase("run --dev {disk} --seed 1 --ops 10 --expect-initial abc", "expected 64 hex digits")]
    [TestCase("run --dev {disk} --seed 1 --ops 10 --region 8M", "larger than")]
    [TestCase("run --dev {disk} --seed 1 --ops 10 --region 1000", "must be at least 4096")]
    [TestCase("run --dev {dir}/missing.raw --seed 1 --ops 10", "cannot open")]
    [TestCase("run --dev {disk} --seed 1 --ops 10 --mode randread4k", "--mode is not an option of 'run'")]
    [TestCase("bench --dev {disk} --mode randomly --seconds 1", "--mode randomly")]
    [TestCase("bench --dev {disk} --mode seqread1m", "missing --seconds")]
    [TestCase("bench --dev {disk} --mode seqread1m --seconds 0", "--seconds 0")]
    [TestCase("digest --dev {dir}", "neither a block device nor a regular file")]
    public void Verify_BadUsage_ExitsTwoNamingTheProblem(string args, string problem)
    {
        RandomImage("disk.raw", 4 << 20, 5);
        var argv = args.Replace("{disk}", Path.Combine(_dir, "disk.raw"), StringComparison.Ordinal).Replace("{dir}", _dir, StringComparison.Ordinal)
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var r = Run([.. argv, .. argv.Length > 0 && argv[0] != "frobnicate" ? DirectArgs : []]);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.StdOut + r.StdErr);
        Assert.That(r.StdErr, Does.StartWith("verify: ").And.Contain(problem));
        Assert.That(r.StdOut, Does.Not.Contain("XENLAB-VERIFY ok"));
    }

    [Test]
    public void Verify_Help_ExitsZeroPrintingUsage()
    {
        var r = Run("--help");
        Assert.That(r.ExitCode, Is.EqualTo(0));
        Assert.That(r.StdOut, Does.Contain("verify run").And.Contain("verify bench").And.Contain("verify digest"));
    }

    [TestCase("randread4k", 4096)]
    [TestCase("randwrite4k", 4096)]
    [TestCase("seqread1m", 1 << 20)]
    public void Bench_OneSecondOnFile_PrintsOneLineInFormat(string mode, int blockSize)
    {
        RandomImage("disk.raw", 8 << 20, 6);
        var disk = Path.Combine(_dir, "disk.raw");
        var r = Run(["bench", "--dev", disk, "--mode", mode, "--seconds", "1", "--region", "4M", .. DirectArgs]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.StdOut + r.StdErr);
        Assert.That(r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(1), r.StdOut);
        var m = BenchLine().Match(r.StdOut);
        Assert.That(m.Success, Is.True, r.StdOut);
        Assert.That(m.Groups[1].Value, Is.EqualTo(mode));
        long ops = long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        double seconds = double.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
        double iops = double.Parse(m.Groups[5].Value, CultureInfo.InvariantCulture);
        double mibs = double.Parse(m.Groups[6].Value, CultureInfo.InvariantCulture);
        Assert.That(ops, Is.GreaterThan(0));
        Assert.That(long.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), Is.EqualTo(ops * blockSize));
        Assert.That(seconds, Is.GreaterThanOrEqualTo(1.0).And.LessThan(30));
        Assert.That(iops, Is.EqualTo(ops / seconds).Within(0.5).Percent);
        Assert.That(mibs, Is.EqualTo(ops * (double)blockSize / (1 << 20) / seconds).Within(0.5).Percent);
        var image = File.ReadAllBytes(disk);
        if (mode == "randwrite4k")
        {
            Assert.That(CheckMarkers(image, 1), Is.GreaterThan(0), "bench writes carry the marker");
            Assert.That(image.AsSpan(4 << 20).IndexOf("XENLAB-DATA"u8), Is.EqualTo(-1), "nothing written beyond --region");
        }
        else
        {
            Assert.That(image.AsSpan().IndexOf("XENLAB-DATA"u8), Is.EqualTo(-1), "read modes write nothing");
        }
    }

    /// <summary>
    /// A real block device: BLKGETSIZE64, O_DIRECT and BLKDISCARD on a loop device over a file. Skips where this
    /// sandbox cannot create loop devices (not root, no losetup, no /dev/loop-control).
    /// </summary>
    [Test]
    public void Run_LoopDevice_DirectIoDiscardsAndDigestMatchesBackingFile()
    {
        var verify = Verify();
        var losetup = Peers.Find("losetup");
        if (losetup == null || !Environment.IsPrivilegedProcess || !File.Exists("/dev/loop-control"))
            Assert.Ignore("loop devices need root, losetup and /dev/loop-control");
        var original = RandomImage("loop.raw", 8 << 20, 7);
        var backing = Path.Combine(_dir, "loop.raw");
        var attach = Peers.Run(losetup, ["-f", "--show", backing]);
        if (attach.ExitCode != 0) Assert.Ignore($"losetup cannot create a loop device here: {attach.StdErr.Trim()}");
        var loop = attach.StdOut.Trim();
        string digestOnDevice;
        RunResult result;
        try
        {
            var r = Peers.Run(verify, ["run", "--dev", loop, "--seed", "71", "--ops", "1500"], TimeSpan.FromMinutes(2));
            Assert.That(r.ExitCode, Is.EqualTo(0), $"verify run on {loop}:\n{r.StdOut}{r.StdErr}");
            Assert.That(r.StdOut, Does.Contain($"phase=start dev={loop} bytes={8 << 20} region={8 << 20} direct=1 lbs=512"));
            result = ParseOk(r.StdOut, 71, 1500);
            var d = Peers.Run(verify, ["digest", "--dev", loop]);
            Assert.That(d.ExitCode, Is.EqualTo(0), d.StdOut + d.StdErr);
            digestOnDevice = DigestLine().Match(d.StdOut).Groups[1].Value;
        }
        finally
        {
            Peers.Run(losetup, ["-d", loop]).EnsureSuccess($"losetup -d {loop}");
        }
        Assert.That(result.Initial, Is.EqualTo(Sha256Hex(original)));
        Assert.That(result.Bytes, Is.EqualTo((ulong)(8 << 20)), "BLKGETSIZE64");
        Assert.That(result.Discards + result.DiscardUnsupported, Is.GreaterThan(50));
        if (result.DiscardUnsupported > 0)
            Assert.Warn($"the loop device refused BLKDISCARD ({result.DiscardUnsupported} times): the backing filesystem cannot punch holes");
        Assert.That(digestOnDevice, Is.EqualTo(result.Digest), "verify digest on the device");
        Assert.That(Sha256Hex(backing), Is.EqualTo(result.Digest), "the backing file after detach, as dom0 checks image.raw");
        Assert.That(CheckMarkers(File.ReadAllBytes(backing), 71), Is.GreaterThan(500));
    }
}
