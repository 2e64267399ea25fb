using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text.Json;
using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;
using static BlkTap.Nbd.Tests.Server.RawNbd;
using BlkTap.Testing.Nbd;

namespace BlkTap.Nbd.Tests.Server;

/// <summary>
/// Our NbdServer driven by real NBD clients (libnbd tools, qemu, fio): the same suite against the memory backend on
/// the server's own loop, and against a tap chain served on the chain's loop (the direct path).
/// </summary>
[TestFixture(NbdServerKind.Memory)]
[TestFixture(NbdServerKind.Chain)]
[NonParallelizable]
public class NbdServerPeerTests(NbdServerKind kind) : NbdServerFixture(kind)
{
    [Test]
    public void NbdinfoJson_MemoryExport_ShowsSizeAndFlags()
    {
        var nbdinfo = Peers.Require("nbdinfo");
        var sock = Serve(new MemoryNbdExportBackend(3 * 1024 * 1024 + 512));
        var size = Peers.Run(nbdinfo, ["--size", $"nbd+unix:///?socket={sock}"]).EnsureSuccess("nbdinfo --size");
        Assert.That(size.StdOut.Trim(), Is.EqualTo((3 * 1024 * 1024 + 512).ToString()));

        var json = Peers.Run(nbdinfo, ["--json", $"nbd+unix:///?socket={sock}"]).EnsureSuccess("nbdinfo --json");
        using var doc = JsonDocument.Parse(json.StdOut);
        Assert.That(doc.RootElement.GetProperty("protocol").GetString(), Is.EqualTo("newstyle-fixed"));
        Assert.That(doc.RootElement.GetProperty("structured").GetBoolean(), Is.False, "structured replies must be declined");
        var export = doc.RootElement.GetProperty("exports")[0];
        Assert.That(export.GetProperty("export-size").GetUInt64(), Is.EqualTo(3UL * 1024 * 1024 + 512));
        Assert.That(export.GetProperty("is_read_only").GetBoolean(), Is.False);
        Assert.That(export.GetProperty("can_flush").GetBoolean(), Is.True);
        Assert.That(export.GetProperty("can_fua").GetBoolean(), Is.True);
        Assert.That(export.GetProperty("can_trim").GetBoolean(), Is.True);
        Assert.That(export.GetProperty("can_zero").GetBoolean(), Is.True);
        // A chain's sessions may have different disks, so it never promises multi-conn.
        Assert.That(export.GetProperty("can_multi_conn").GetBoolean(), Is.EqualTo(Kind == NbdServerKind.Memory));
        Assert.That(export.GetProperty("block_size_maximum").GetUInt32(), Is.EqualTo(NbdMagic.MaxPayload));
    }

    [Test]
    public void NbdinfoJson_ReadOnlyExport_ReportsReadOnly()
    {
        var nbdinfo = Peers.Require("nbdinfo");
        var sock = Serve(new MemoryNbdExportBackend(1 << 20, readOnly: true, canMultiConn: false));
        var json = Peers.Run(nbdinfo, ["--json", $"nbd+unix:///?socket={sock}"]).EnsureSuccess("nbdinfo --json");
        using var doc = JsonDocument.Parse(json.StdOut);
        var export = doc.RootElement.GetProperty("exports")[0];
        Assert.That(export.GetProperty("is_read_only").GetBoolean(), Is.True);
        Assert.That(export.GetProperty("can_multi_conn").GetBoolean(), Is.False);
    }

    [Test]
    public void NbdinfoList_Server_ListsTheExport()
    {
        var nbdinfo = Peers.Require("nbdinfo");
        _host = new NbdServerHost(Kind, new MemoryNbdExportBackend(1 << 20), exportName: "disk0");
        var sock = Path.Combine(_dir, "l.sock");
        _server!.ListenUnix(sock);
        var r = Peers.Run(nbdinfo, ["--list", "--json", $"nbd+unix:///?socket={sock}"]).EnsureSuccess("nbdinfo --list");
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.That(doc.RootElement.GetProperty("exports")[0].GetProperty("export-name").GetString(), Is.EqualTo("disk0"));
        var bad = Peers.Run(nbdinfo, [$"nbd+unix:///nosuch?socket={sock}"]);
        Assert.That(bad.ExitCode, Is.Not.EqualTo(0));
        Assert.That(bad.StdErr, Does.Contain("nosuch").Or.Contain("unknown").IgnoreCase);
    }

    [Test]
    public void QemuImgCompare_ExportAndFileWithSameBytes_Identical()
    {
        var qemuImg = Peers.Require("qemu-img");
        var data = NbdTestUtil.RandomBytes(4 << 20, 11);
        var file = Path.Combine(_dir, "same.raw");
        File.WriteAllBytes(file, data);
        var sock = Serve(new MemoryNbdExportBackend((byte[])data.Clone()));
        Peers.Run(qemuImg, ["compare", "-f", "raw", "-F", "raw", file, $"nbd+unix:///?socket={sock}"]).EnsureSuccess("qemu-img compare");

        data[123457] ^= 0xff;
        File.WriteAllBytes(file, data);
        var differ = Peers.Run(qemuImg, ["compare", "-f", "raw", "-F", "raw", file, $"nbd+unix:///?socket={sock}"]);
        Assert.That(differ.ExitCode, Is.EqualTo(1), differ.StdOut + differ.StdErr);
    }

    [Test]
    public void Nbdcopy_Upload64MiBThenDownload_BytesEqual()
    {
        var nbdcopy = Peers.Require("nbdcopy");
        const int size = 64 << 20;
        var src = Path.Combine(_dir, "src.raw");
        var dst = Path.Combine(_dir, "dst.raw");
        var data = NbdTestUtil.RandomBytes(size, 64);
        Array.Clear(data, 8 << 20, 1 << 20); // a zero run exercises zeroing / trimming paths
        File.WriteAllBytes(src, data);
        var backend = new MemoryNbdExportBackend(size);
        var sock = Serve(backend);
        string uri = $"nbd+unix:///?socket={sock}";
        Peers.Run(nbdcopy, [src, uri]).EnsureSuccess("nbdcopy upload");
        Assert.That(backend.Data.AsSpan().SequenceEqual(data), Is.True, "export differs from the uploaded file");
        Peers.Run(nbdcopy, [uri, dst]).EnsureSuccess("nbdcopy download");
        Assert.That(File.ReadAllBytes(dst).AsSpan().SequenceEqual(data), Is.True, "downloaded bytes differ");
    }

    [Test]
    public void Fio_RandWriteWithCrc32cVerify_Passes()
    {
        var fio = Peers.Require("fio");
        var sock = Serve(new MemoryNbdExportBackend(32 << 20));
        var r = Peers.Run(fio, ["--name=nbdv", "--ioengine=nbd", $"--uri=nbd+unix:///?socket={sock}", "--rw=randwrite",
            "--bs=4k", "--size=32m", "--iodepth=16", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=json"],
            TimeSpan.FromMinutes(2));
        r.EnsureSuccess("fio");
        using var doc = JsonDocument.Parse(r.StdOut[r.StdOut.IndexOf('{')..]);
        var job = doc.RootElement.GetProperty("jobs")[0];
        Assert.That(job.GetProperty("error").GetInt32(), Is.EqualTo(0));
        Assert.That(job.GetProperty("write").GetProperty("io_bytes").GetInt64(), Is.EqualTo(32L << 20));
        Assert.That(job.GetProperty("read").GetProperty("io_bytes").GetInt64(), Is.EqualTo(32L << 20), "verify pass read everything back");
    }

    [Test]
    public void QemuIo_WriteThenReadPattern_Matches()
    {
        var qemuIo = Peers.Require("qemu-io");
        var backend = new MemoryNbdExportBackend(8 << 20);
        var sock = Serve(backend);
        string uri = $"nbd+unix:///?socket={sock}";
        Peers.Run(qemuIo, ["-f", "raw", "-c", "write -P 0xa5 65536 131072", "-c", "write -z 1048576 4096", "-c", "flush", uri]).EnsureSuccess("qemu-io write");
        Assert.That(backend.Data.AsSpan(65536, 131072).IndexOfAnyExcept((byte)0xa5), Is.EqualTo(-1));
        Assert.That(backend.FlushCount, Is.GreaterThan(0));
        var ok = Peers.Run(qemuIo, ["-f", "raw", "-c", "read -P 0xa5 65536 131072", "-c", "read -P 0 0 65536", uri]).EnsureSuccess("qemu-io read");
        Assert.That(ok.StdOut, Does.Not.Contain("Pattern verification failed"));
        var bad = Peers.Run(qemuIo, ["-f", "raw", "-c", "read -P 0x11 65536 4096", uri]);
        Assert.That(bad.StdOut + bad.StdErr, Does.Contain("Pattern verification failed"));
    }

    [Test]
    public void QemuIo_ReadPastEnd_FailsWithoutHurtingServer()
    {
        var qemuIo = Peers.Require("qemu-io");
        var nbdinfo = Peers.Require("nbdinfo");
        var sock = Serve(new MemoryNbdExportBackend(1 << 20));
        var r = Peers.Run(qemuIo, ["-f", "raw", "-c", "read 1048064 1024", $"nbd+unix:///?socket={sock}"]);
        Assert.That(r.StdOut + r.StdErr, Does.Contain("Input/output error").Or.Contain("Invalid argument").Or.Contain("out of range").Or.Contain("beyond"));
        Peers.Run(nbdinfo, ["--size", $"nbd+unix:///?socket={sock}"]).EnsureSuccess("server still serves");
    }

    [Test]
    public void TwoClients_AtOnce_BothServed()
    {
        var qemuIo = Peers.Require("qemu-io");
        var backend = new MemoryNbdExportBackend(16 << 20);
        var sock = Serve(backend);
        string uri = $"nbd+unix:///?socket={sock}";
        var a = Task.Run(() => Peers.Run(qemuIo, ["-f", "raw", "-c", "aio_write -P 0x11 0 4M", "-c", "aio_flush", uri]));
        var b = Task.Run(() => Peers.Run(qemuIo, ["-f", "raw", "-c", "aio_write -P 0x22 8M 4M", "-c", "aio_flush", uri]));
        // A third (raw) client holds a connection open during the other two.
        using var held = RawTransmission(sock, out _);
        Task.WaitAll(a, b);
        a.Result.EnsureSuccess("client a");
        b.Result.EnsureSuccess("client b");
        Assert.That(backend.Data.AsSpan(0, 4 << 20).IndexOfAnyExcept((byte)0x11), Is.EqualTo(-1));
        Assert.That(backend.Data.AsSpan(8 << 20, 4 << 20).IndexOfAnyExcept((byte)0x22), Is.EqualTo(-1));
        var buf = new byte[4096];
        Assert.That(Request(held, NbdCommand.Read, 1, 8 << 20, 4096, readInto: buf).Error, Is.EqualTo(0u));
        Assert.That(buf, Is.All.EqualTo((byte)0x22));
    }

    [Test]
    public void GarbageHandshake_RawSocket_DisconnectedWhileOtherClientWorks()
    {
        var backend = new MemoryNbdExportBackend(1 << 20);
        var sock = Serve(backend);
        using var good = RawTransmission(sock, out _);

        using var bad = RawConnect(sock);
        var greeting = new byte[18];
        bad.Receive(greeting);
        bad.Send(new byte[] { 0, 0, 0, 3 }); // fixed newstyle + no zeroes
        bad.Send(System.Text.Encoding.ASCII.GetBytes("GARBAGE!GARBAGE!GARBAGE!"));
        Assert.That(ClosedByServer(bad), Is.True, "server kept a client with a garbage option magic");

        using var bad2 = RawConnect(sock);
        bad2.Receive(greeting);
        bad2.Send(new byte[] { 0xff, 0xff, 0xff, 0xff }); // unknown client flags
        Assert.That(ClosedByServer(bad2), Is.True, "server kept a client with unknown client flags");

        var data = NbdTestUtil.RandomBytes(8192, 5);
        Assert.That(Request(good, NbdCommand.Write, 1, 4096, 8192, data).Error, Is.EqualTo(0u));
        Assert.That(backend.Data.AsSpan(4096, 8192).SequenceEqual(data), Is.True);
    }

    [Test]
    public void RawRequests_BadRanges_AnsweredWithSpecErrors()
    {
        var sock = Serve(new MemoryNbdExportBackend(1 << 20));
        using var s = RawTransmission(sock, out var size);
        Assert.That(size, Is.EqualTo(1UL << 20));
        Assert.That(Request(s, NbdCommand.Read, 1, size - 512, 1024).Error, Is.EqualTo((uint)NbdError.EINVAL), "read past end");
        Assert.That(Request(s, NbdCommand.Write, 2, size - 512, 1024, new byte[1024]).Error, Is.EqualTo((uint)NbdError.ENOSPC), "write past end");
        Assert.That(Request(s, NbdCommand.Read, 3, 0, 33u << 20).Error, Is.EqualTo((uint)NbdError.EINVAL), "oversized read");
        Assert.That(Request(s, (NbdCommand)99, 4, 0, 0).Error, Is.EqualTo((uint)NbdError.EINVAL), "unknown command");
        Assert.That(Request(s, NbdCommand.Trim, 5, ulong.MaxValue - 10, 100).Error, Is.EqualTo((uint)NbdError.EINVAL), "trim with wrapping range");
        Assert.That(Request(s, NbdCommand.Write, 6, 512, 4, [1, 2, 3, 4]).Error, Is.EqualTo(0u), "still serving");
    }

    [Test]
    public void RawRequests_ReadOnlyExportWrite_EPERM()
    {
        var sock = Serve(new MemoryNbdExportBackend(1 << 20, readOnly: true));
        using var s = RawTransmission(sock, out _);
        Assert.That(Request(s, NbdCommand.Write, 1, 0, 4, [1, 2, 3, 4]).Error, Is.EqualTo((uint)NbdError.EPERM));
        Assert.That(Request(s, NbdCommand.WriteZeroes, 2, 0, 4).Error, Is.EqualTo((uint)NbdError.EPERM));
    }

    [Test]
    public void GarbageCommandMagic_RawSocket_DisconnectedWhileOtherClientWorks()
    {
        var backend = new MemoryNbdExportBackend(1 << 20);
        var sock = Serve(backend);
        using var good = RawTransmission(sock, out _);
        using var s = RawTransmission(sock, out _);
        Assert.That(Request(s, NbdCommand.Write, 1, 0, 4, [9, 9, 9, 9]).Error, Is.EqualTo(0u));
        s.Send(new byte[28].Select((_, i) => (byte)(0x41 + i)).ToArray());
        Assert.That(ClosedByServer(s), Is.True, "server kept a client after garbage request magic");
        Assert.That(backend.Data[0..4], Is.EqualTo(new byte[] { 9, 9, 9, 9 }), "acknowledged write survived");

        using var big = RawTransmission(sock, out _);
        var h = new byte[28];
        new NbdRequestHeader(0, NbdCommand.Write, 7, 0, 64u << 20).Write(h);
        big.Send(h);
        Assert.That(ClosedByServer(big), Is.True, "server kept a client sending a 64 MiB write");

        var buf = new byte[4];
        Assert.That(Request(good, NbdCommand.Read, 1, 0, 4, readInto: buf).Error, Is.EqualTo(0u));
        Assert.That(buf, Is.EqualTo(new byte[] { 9, 9, 9, 9 }));
    }

    [Test]
    public async Task StopAsync_WithWritesInFlight_AnswersThemFlushesAndCloses()
    {
        var backend = new MemoryNbdExportBackend(4 << 20);
        var sock = Serve(backend);
        using var s = RawTransmission(sock, out _);
        var data = NbdTestUtil.RandomBytes(1 << 20, 9);
        var h = new byte[28];
        for (int i = 0; i < 4; i++)
        {
            new NbdRequestHeader(0, NbdCommand.Write, (ulong)i, (ulong)i << 20, 1 << 20).Write(h);
            s.Send(h);
            s.Send(data);
        }
        // Wait until the server has answered all four, then stop it.
        var replies = new HashSet<ulong>();
        var r = new byte[16];
        for (int i = 0; i < 4; i++)
        {
            ReadExact(s, r);
            Assert.That(NbdSimpleReply.TryRead(r, out var reply, out var err), Is.True, err);
            Assert.That(reply.Error, Is.EqualTo(0u));
            replies.Add(reply.Cookie);
        }
        Assert.That(replies, Is.EquivalentTo(new ulong[] { 0, 1, 2, 3 }));
        long flushesBefore = backend.FlushCount;
        await _server!.StopAsync();
        Assert.That(backend.FlushCount, Is.GreaterThan(flushesBefore), "stop flushes the backend");
        for (int i = 0; i < 4; i++) Assert.That(backend.Data.AsSpan(i << 20, 1 << 20).SequenceEqual(data), Is.True);
        Assert.That(File.Exists(sock), Is.False, "socket file removed");
        Assert.That(ClosedByServer(s), Is.True, "connection closed");
        Assert.That(_server.ActiveConnections, Is.EqualTo(0));
    }

    [Test]
    public void ManyRequestsInFlight_OneConnection_AllAnsweredByCookie()
    {
        var backend = new MemoryNbdExportBackend(1 << 20);
        var sock = Serve(backend, maxInFlight: 8);
        using var s = RawTransmission(sock, out _);
        // 200 pipelined writes of 4 KiB with distinct cookies, then 200 reads; every reply arrives once.
        var batch = new List<byte>();
        var h = new byte[28];
        for (int i = 0; i < 200; i++)
        {
            new NbdRequestHeader(NbdCommandFlags.Fua, NbdCommand.Write, 1000UL + (ulong)i, (ulong)(i % 256) * 4096, 4096).Write(h);
            batch.AddRange(h);
            batch.AddRange(Enumerable.Repeat((byte)(i % 256), 4096));
        }
        s.Send(batch.ToArray());
        var seen = new HashSet<ulong>();
        var r = new byte[16];
        for (int i = 0; i < 200; i++)
        {
            ReadExact(s, r);
            Assert.That(NbdSimpleReply.TryRead(r, out var reply, out var err), Is.True, err);
            Assert.That(reply.Error, Is.EqualTo(0u));
            Assert.That(seen.Add(reply.Cookie), Is.True, "duplicate reply");
        }
        for (int i = 0; i < 200; i++) Assert.That(seen, Does.Contain(1000UL + (ulong)i));
        for (int blk = 0; blk < 200; blk++)
            Assert.That(backend.Data.AsSpan(blk * 4096, 4096).IndexOfAnyExcept((byte)blk), Is.EqualTo(-1), $"block {blk}");
    }
}
