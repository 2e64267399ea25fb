using System.Net.Sockets;
using BlkTap.Linux;
using BlkTap.Linux.Storage;
using BlkTap.Nbd;
using BlkTap.Storage;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing;
using BlkTap.Testing.Nbd;
using static BlkTap.Nbd.Tests.Server.RawNbd;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>Which hooks besides the file terminator the chain under test has.</summary>
public enum FileReplyChain
{
    /// <summary>The terminator alone: large reads may be answered with a file range and sent with sendfile.</summary>
    TerminatorOnly,

    /// <summary>A pass-through request hook before the terminator: it may look at data, so every read is copied.</summary>
    WithRequestHook,

    /// <summary>A response hook: it may look at a read's data, so every read is copied.</summary>
    WithResponseHook,
}

/// <summary>
/// The direct path of <c>blktap nbd serve --tap img</c> over an image in memory (/dev/shm), where a large read is
/// answered with its range of the image file and sent with sendfile(2) instead of through the slot's buffer: a real
/// <see cref="FileBlockDevice"/> over a <see cref="LinuxStorageFile"/>, a byte-array model, and the server's count of
/// replies sent from the file, which must be positive only when no other hook can see the data.
/// </summary>
[TestFixture(FileReplyChain.TerminatorOnly)]
[TestFixture(FileReplyChain.WithRequestHook)]
[TestFixture(FileReplyChain.WithResponseHook)]
[NonParallelizable]
public class NbdServerFileReplyTests(FileReplyChain chain)
{
    private const int Size = 8 << 20;
    private const int Sector = 512;
    private string _dir = null!;
    private string _image = null!;
    private string _sock = null!;
    private TapRuntime _runtime = null!;
    private CancellationTokenSource _stop = null!;
    private Task _loop = null!;
    private NbdServer _server = null!;
    private FileBlockDevice _device = null!;
    private byte[] _model = null!;
    private int _hookSaw;

    [SetUp]
    public void Start()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm: the file-reply path needs a file in memory");
        _dir = NbdTestUtil.TempDir();
        _image = Path.Combine("/dev/shm", $"blktap-filereply-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
        _model = new byte[Size];
        new Random(1234).NextBytes(_model);
        File.WriteAllBytes(_image, _model);
        var file = LinuxStorageProvider.Shared.Open(_image, StorageOpenOptions.Writable);
        Assert.That(((LinuxStorageFile)file).InMemory, Is.True, "/dev/shm is expected to be tmpfs");
        _device = new FileBlockDevice(file, discard: true, queued: false);
        _runtime = new TapRuntime(new TapRuntimeOptions { Name = "nbd-filereply", Waiter = new EpollLoopWaiter() });
        _runtime.RegisterControlHook("disk", new BlockDeviceHook(_device));
        if (chain == FileReplyChain.WithRequestHook)
            _runtime.RegisterRequestHook("look", Hook.Request(r => { _hookSaw++; return HookResult.Pass; }));
        _runtime.RegisterRequestHook("disk", Hook.Request(r => _device.Submit(r)));
        if (chain == FileReplyChain.WithResponseHook)
            _runtime.RegisterResponseHook("look", Hook.Response(r => _hookSaw++));
        _stop = new CancellationTokenSource();
        _loop = _runtime.RunAsync(_stop.Token);
        _server = new NbdServer(new NbdExportProvider(_runtime));
        Assert.That(_server.ServesOnChainLoop, Is.True);
        _sock = Path.Combine(_dir, "f.sock");
        _server.ListenUnix(_sock);
    }

    [TearDown]
    public async Task Stop()
    {
        await _server.DisposeAsync();
        _stop.Cancel();
        await _loop;
        _runtime.Dispose();
        _device.Dispose();
        _stop.Dispose();
        File.Delete(_image);
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private bool ExpectFromFile => chain == FileReplyChain.TerminatorOnly;

    /// <summary>
    /// The server's count of replies sent from the file, read on the loop after the pass that sent the last bytes
    /// (the client can hold those bytes before the loop thread, back from sendfile, has counted the reply).
    /// </summary>
    private long RepliesFromFile() => Waits.OnLoop(_runtime, () => _server.RepliesSentFromFile);

    public sealed record Op(bool Write, int Offset, int Length, byte Fill);

    private static Gen<Op> OpGen =>
        from write in Gen.Frequency((3, Gen.Constant(false)), (1, Gen.Constant(true)))
        from aligned in Gen.Frequency((6, Gen.Constant(true)), (1, Gen.Constant(false)))
        from length in Gen.Frequency(
            (2, Gen.Choose(1, 16).Select(k => k * Sector)),
            (3, Gen.Choose(64, 4096).Select(k => k * Sector)),
            (1, Gen.Elements(32 * 1024 - Sector, 32 * 1024, 32 * 1024 + Sector)))
        from offset in Gen.Choose(0, (Size - length) / Sector).Select(k => k * Sector)
        from skew in aligned ? Gen.Constant(0) : Gen.Choose(1, Sector - 1)
        from fill in ArbMap.Default.GeneratorFor<byte>()
        select new Op(write, Math.Max(0, offset - skew), length, fill);

    [FsCheck.NUnit.Property(MaxTest = 20)]
    public Property RandomReadsAndWrites_Sequential_ReadsSeeModel() =>
        Prop.ForAll(Gen.ListOf(OpGen).Select(l => l.Take(30).ToArray()).ToArbitrary(), ops =>
        {
            using var s = RawTransmission(_sock, out ulong size);
            Assert.That(size, Is.EqualTo((ulong)Size));
            ulong cookie = 0;
            foreach (var op in ops)
            {
                cookie++;
                if (op.Write)
                {
                    var payload = Enumerable.Repeat(op.Fill, op.Length).ToArray();
                    var reply = Request(s, NbdCommand.Write, cookie, (ulong)op.Offset, (uint)op.Length, payload: payload);
                    Assert.That(reply.Error, Is.EqualTo(0u), $"write [{op.Offset}, +{op.Length})");
                    payload.CopyTo(_model, op.Offset);
                }
                else
                {
                    var data = new byte[op.Length];
                    var reply = Request(s, NbdCommand.Read, cookie, (ulong)op.Offset, (uint)op.Length, readInto: data);
                    Assert.That(reply.Error, Is.EqualTo(0u), $"read [{op.Offset}, +{op.Length})");
                    Assert.That(data.AsSpan().SequenceEqual(_model.AsSpan(op.Offset, op.Length)), Is.True, $"read [{op.Offset}, +{op.Length}) differs from the model");
                }
            }
            return true;
        });

    [Test]
    public void LargeReads_PipelinedPastTheSocketBuffer_EveryByteArrivesInOrder()
    {
        // 48 reads of 1 MiB (and a 4 KiB read after each, which is gathered, not sent from the file) leave in one send:
        // 48 MiB of replies against a socket buffer of a few MiB, so sendfile stops part-way and resumes when the
        // socket is writable again, and the small replies queue behind the large ones.
        using var s = RawTransmission(_sock, out _);
        var rng = new Random(99);
        var reqs = new List<(int Offset, int Length)>();
        var stream = new List<byte>();
        for (int i = 0; i < 48; i++)
        {
            int big = rng.Next(0, (Size - (1 << 20)) / Sector) * Sector;
            int small = rng.Next(0, (Size - 4096) / Sector) * Sector;
            reqs.Add((big, 1 << 20));
            reqs.Add((small, 4096));
        }
        for (int i = 0; i < reqs.Count; i++) stream.AddRange(Header(NbdCommand.Read, (ulong)i, (ulong)reqs[i].Offset, (uint)reqs[i].Length));
        s.Send(stream.ToArray());
        var seen = new HashSet<int>();
        for (int n = 0; n < reqs.Count; n++)
        {
            var reply = ReadReply(s);
            int i = (int)reply.Cookie;
            Assert.That(seen.Add(i), Is.True, $"reply {i} repeated");
            Assert.That(reply.Error, Is.EqualTo(0u));
            var data = new byte[reqs[i].Length];
            ReadExact(s, data);
            Assert.That(data.AsSpan().SequenceEqual(_model.AsSpan(reqs[i].Offset, reqs[i].Length)), Is.True, $"read {i} [{reqs[i].Offset}, +{reqs[i].Length}) differs");
        }
        if (ExpectFromFile) Assert.That(RepliesFromFile(), Is.EqualTo(48), "every 1 MiB read, and no 4 KiB one, went from the file");
        else
        {
            Assert.That(RepliesFromFile(), Is.Zero, "another hook could see the data: no read may bypass the buffer");
            Assert.That(Waits.OnLoop(_runtime, () => _hookSaw), Is.GreaterThanOrEqualTo(reqs.Count), "the other hook saw every read");
        }
    }

    [Test]
    public void Read_FileShrunkUnderTheExport_PastTheEndReadsAsZeroes()
    {
        // The export keeps its size from open; a read past the file's new end sends the file's bytes, then zeroes (what
        // a read into a buffer gives), and the connection stays usable.
        const int newLength = Size - 40 * 1024;
        using (var f = new FileStream(_image, FileMode.Open, FileAccess.Write)) f.SetLength(newLength);
        using var s = RawTransmission(_sock, out _);
        int offset = Size - 128 * 1024;
        var data = new byte[128 * 1024];
        var reply = Request(s, NbdCommand.Read, 1, (ulong)offset, (uint)data.Length, readInto: data);
        Assert.That(reply.Error, Is.EqualTo(0u));
        int kept = newLength - offset;
        Assert.That(data.AsSpan(0, kept).SequenceEqual(_model.AsSpan(offset, kept)), Is.True, "bytes before the new end");
        Assert.That(data.AsSpan(kept).ContainsAnyExcept((byte)0), Is.False, "bytes past the new end read as zeroes");
        var after = new byte[64 * 1024];
        reply = Request(s, NbdCommand.Read, 2, 0, (uint)after.Length, readInto: after);
        Assert.That(reply.Error, Is.EqualTo(0u));
        Assert.That(after.AsSpan().SequenceEqual(_model.AsSpan(0, after.Length)), Is.True, "the connection still serves");
        if (ExpectFromFile) Assert.That(RepliesFromFile(), Is.EqualTo(1), "the shrunk read finished from the buffer; the next went from the file");
    }
}
