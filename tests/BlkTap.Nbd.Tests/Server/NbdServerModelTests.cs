using System.Net.Sockets;
using BlkTap.Nbd;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using static BlkTap.Nbd.Tests.Server.RawNbd;
using BlkTap.Testing.Nbd;
using BlkTap.Testing.Rigs;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>
/// Random well-formed requests (any command code, ranges in and out of bounds) against the server with the memory
/// backend, compared with a byte-array model: every reply carries the error the spec asks for, and reads see the model.
/// </summary>
[TestFixture(NbdServerKind.Memory)]
[TestFixture(NbdServerKind.Chain)]
[NonParallelizable]
public class NbdServerModelTests(NbdServerKind kind)
{
    private const int Size = 256 * 1024;
    private string _dir = null!;
    private NbdServerHost _host = null!;
    private string _sock = null!;
    private MemoryNbdExportBackend _backend = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _dir = NbdTestUtil.TempDir();
        _backend = new MemoryNbdExportBackend(Size);
        _host = new NbdServerHost(kind, _backend, new NbdServerOptions { MaxInFlightPerConnection = 4 }); // small, so batches throttle
        _sock = Path.Combine(_dir, "m.sock");
        _host.Server.ListenUnix(_sock);
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        await _host.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    public sealed record Req(ushort Command, ulong Offset, uint Length, byte Fill, bool Fua);

    private static Gen<Req> ReqGen =>
        from cmd in Gen.Frequency(
            (6, Gen.Constant((ushort)NbdCommand.Read)), (6, Gen.Constant((ushort)NbdCommand.Write)),
            (1, Gen.Constant((ushort)NbdCommand.Flush)), (2, Gen.Constant((ushort)NbdCommand.Trim)),
            (2, Gen.Constant((ushort)NbdCommand.WriteZeroes)), (1, Gen.Elements((ushort)5, (ushort)7, (ushort)8, (ushort)200, ushort.MaxValue)))
        from offset in Gen.Frequency(
            (8, Gen.Choose(0, Size - 1).Select(o => (ulong)o)),
            (1, Gen.Choose(Size - 16, Size + 4096).Select(o => (ulong)o)),
            (1, Gen.Elements(ulong.MaxValue, ulong.MaxValue - 100, 1UL << 40)))
        from length in Gen.Frequency((8, Gen.Choose(0, 16384)), (1, Gen.Choose(Size - 100, Size + 100)))
        from fill in ArbMap.Default.GeneratorFor<byte>()
        from fua in ArbMap.Default.GeneratorFor<bool>()
        select new Req(cmd, offset, (uint)length, fill, fua);

    [FsCheck.NUnit.Property(MaxTest = 30)]
    public Property RandomRequests_Sequential_RepliesAndDataMatchModel() =>
        Prop.ForAll(Gen.ListOf(ReqGen).Select(l => l.Take(40).ToArray()).ToArbitrary(), reqs =>
        {
            var model = (byte[])_backend.Data.Clone();
            using var s = RawTransmission(_sock, out _);
            ulong cookie = 0;
            foreach (var r in reqs)
            {
                cookie++;
                bool inRange = r.Offset <= Size && r.Length <= Size - r.Offset;
                var cmd = (NbdCommand)r.Command;
                byte[]? payload = cmd == NbdCommand.Write ? Enumerable.Repeat(r.Fill, (int)r.Length).ToArray() : null;
                byte[]? readBuf = cmd == NbdCommand.Read ? new byte[r.Length] : null;
                var flags = r.Fua ? NbdCommandFlags.Fua : NbdCommandFlags.None;
                var h = new byte[28];
                new NbdRequestHeader(flags, cmd, cookie, r.Offset, r.Length).Write(h);
                s.Send(h);
                if (payload != null) s.Send(payload);
                var rep = new byte[16];
                ReadExact(s, rep);
                if (!NbdSimpleReply.TryRead(rep, out var reply, out var err)) Assert.Fail(err ?? "bad reply");
                Assert.That(reply.Cookie, Is.EqualTo(cookie));
                int expected = cmd switch
                {
                    NbdCommand.Read => inRange ? 0 : NbdError.EINVAL,
                    NbdCommand.Write => inRange ? 0 : NbdError.ENOSPC,
                    NbdCommand.Flush => 0,
                    NbdCommand.Trim => inRange ? 0 : NbdError.EINVAL,
                    NbdCommand.WriteZeroes => inRange ? 0 : NbdError.ENOSPC,
                    _ => NbdError.EINVAL,
                };
                Assert.That((int)reply.Error, Is.EqualTo(expected), $"{cmd} [{r.Offset}, +{r.Length})");
                if (expected != 0) continue;
                switch (cmd)
                {
                    case NbdCommand.Read:
                        ReadExact(s, readBuf!);
                        Assert.That(readBuf.AsSpan().SequenceEqual(model.AsSpan((int)r.Offset, (int)r.Length)), Is.True, $"read [{r.Offset}, +{r.Length}) differs from model");
                        break;
                    case NbdCommand.Write:
                        payload!.CopyTo(model, (int)r.Offset);
                        break;
                    case NbdCommand.Trim when kind == NbdServerKind.Chain:
                    {
                        // A chain discards whole sectors only (blkif DISCARD): the sectors inside the range.
                        long first = ((long)r.Offset + 511) / 512 * 512, end = ((long)r.Offset + r.Length) / 512 * 512;
                        if (end > first) Array.Clear(model, (int)first, (int)(end - first));
                        break;
                    }
                    case NbdCommand.Trim:
                    case NbdCommand.WriteZeroes:
                        Array.Clear(model, (int)r.Offset, (int)r.Length);
                        break;
                }
            }
            Assert.That(_backend.Data.AsSpan().SequenceEqual(model), Is.True, "export differs from model");
            return true;
        });

    public sealed record ZoneReq(ushort Command, int Zone, int Start, int Length, byte Fill, bool Fua);

    private const int ZoneSize = 16 * 1024;

    /// <summary>A batch of requests, each confined to a zone of its own, so that any execution order gives the same result.</summary>
    private static Gen<ZoneReq> ZoneReqGen =>
        from cmd in Gen.Frequency(
            (6, Gen.Constant((ushort)NbdCommand.Read)), (6, Gen.Constant((ushort)NbdCommand.Write)),
            (1, Gen.Constant((ushort)NbdCommand.Flush)), (1, Gen.Constant((ushort)NbdCommand.WriteZeroes)))
        from aligned in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
        from start in aligned ? Gen.Choose(0, ZoneSize / 512 - 1).Select(k => k * 512) : Gen.Choose(0, ZoneSize - 1)
        from length in aligned ? Gen.Choose(1, (ZoneSize - start) / 512).Select(k => k * 512) : Gen.Choose(1, ZoneSize - start)
        from fill in ArbMap.Default.GeneratorFor<byte>()
        from fua in ArbMap.Default.GeneratorFor<bool>()
        select new ZoneReq(cmd, 0, start, length, fill, fua);

    /// <summary>A batch of requests, each confined to a zone of its own, so that any execution order gives the same result.</summary>
    private static Gen<ZoneReq[]> BatchGen =>
        from count in Gen.Choose(1, Size / ZoneSize)
        from zones in Gen.Shuffle(Enumerable.Range(0, Size / ZoneSize).ToArray())
        from reqs in Gen.ArrayOf(ZoneReqGen, count)
        select reqs.Select((r, i) => r with { Zone = zones[i] }).ToArray();

    [FsCheck.NUnit.Property(MaxTest = 25)]
    public Property RandomRequests_PipelinedInOneSend_RepliesAndDataMatchModel() =>
        Prop.ForAll(BatchGen.ToArbitrary(), reqs =>
        {
            // The whole batch leaves in one send, so the server reads many requests at once, throttles at its
            // in-flight limit, and answers in any order; each reply is matched to its request by cookie.
            var model = (byte[])_backend.Data.Clone();
            using var s = RawTransmission(_sock, out _);
            var stream = new List<byte>();
            var h = new byte[28];
            for (int i = 0; i < reqs.Length; i++)
            {
                var r = reqs[i];
                new NbdRequestHeader(r.Fua ? NbdCommandFlags.Fua : 0, (NbdCommand)r.Command, (ulong)i, (ulong)(r.Zone * ZoneSize + r.Start), (uint)r.Length).Write(h);
                stream.AddRange(h);
                if ((NbdCommand)r.Command == NbdCommand.Write) stream.AddRange(Enumerable.Repeat(r.Fill, r.Length));
            }
            s.Send(stream.ToArray());
            var pending = new HashSet<int>(Enumerable.Range(0, reqs.Length));
            var rep = new byte[16];
            for (int n = 0; n < reqs.Length; n++)
            {
                ReadExact(s, rep);
                if (!NbdSimpleReply.TryRead(rep, out var reply, out var err)) Assert.Fail(err ?? "bad reply");
                int i = (int)reply.Cookie;
                Assert.That(pending.Remove(i), Is.True, $"reply for cookie {i} unexpected or repeated");
                Assert.That(reply.Error, Is.EqualTo(0u), $"request {i}");
                var r = reqs[i];
                int at = r.Zone * ZoneSize + r.Start;
                switch ((NbdCommand)r.Command)
                {
                    case NbdCommand.Read:
                        var data = new byte[r.Length];
                        ReadExact(s, data);
                        Assert.That(data.AsSpan().SequenceEqual(model.AsSpan(at, r.Length)), Is.True, $"read {i} differs from the model");
                        break;
                    case NbdCommand.Write:
                        model.AsSpan(at, r.Length).Fill(r.Fill);
                        break;
                    case NbdCommand.WriteZeroes:
                        model.AsSpan(at, r.Length).Clear();
                        break;
                }
            }
            Assert.That(_backend.Data.AsSpan().SequenceEqual(model), Is.True, "export differs from model");
            return true;
        });
}
