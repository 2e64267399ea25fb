using BlkTap.Chains;
using BlkTap.Nbd;
using BlkTap.Linux;
using BlkTap.Testing.Nbd;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Nbd.Tests.Taps;

/// <summary>
/// The nbd tap on a loop that watches descriptors (as in <c>blktap nbd serve</c>): its socket is polled by the loop
/// thread itself, for reading and, while the socket is full, for writing. Checked against a byte-array model with
/// nbdkit's memory plugin as the server, with writes large enough to fill the socket.
/// </summary>
[TestFixture]
[NonParallelizable]
public class NbdTapEpollLoopTests
{
    [Test]
    public async Task Requests_ManyInFlightSomeLarge_MatchModel()
    {
        const long size = 64L << 20;
        var dir = NbdTestUtil.TempDir();
        var uri = NbdUri.ForUnix(Path.Combine(dir, "k.sock"));
        using var nbdkit = NbdTapTestSupport.Nbdkit(uri, "memory", $"size={size}");
        var tap = new NbdTap(uri, TimeSpan.FromSeconds(60));
        using var h = new RuntimeHarness(r => TapChain.Register(r, [tap]), new EpollLoopWaiter());
        Assert.That(h.Runtime.SupportsDescriptors, Is.True);
        var session = h.Attach("nbd-epoll", 0);
        Assert.That(session.Sectors, Is.EqualTo((ulong)(size / 512)));

        var model = new byte[size];
        var rnd = new Random(12);
        const int maxLen = 4 << 20;
        var buffers = Enumerable.Range(0, 16).Select(_ => h.Alloc(maxLen)).ToArray();
        for (int round = 0; round < 12; round++)
        {
            // 16 requests in flight on distinct 4 MiB zones (so their order does not matter), mixed sizes up to 4 MiB.
            var zones = Enumerable.Range(0, (int)(size / maxLen)).OrderBy(_ => rnd.Next()).Take(16).ToArray();
            var pending = new List<(Task<BlkifStatus> Done, bool Write, long At, int Len, nint Buf)>();
            for (int i = 0; i < 16; i++)
            {
                bool write = rnd.Next(2) == 0;
                int len = 512 * (rnd.Next(4) == 0 ? rnd.Next(1, maxLen / 512 + 1) : rnd.Next(1, 17));
                long at = (long)zones[i] * maxLen + 512L * rnd.Next(0, (maxLen - len) / 512 + 1);
                var span = Span(buffers[i], len);
                if (write)
                {
                    rnd.NextBytes(span);
                    span.CopyTo(model.AsSpan((int)at, len));
                }
                var op = write ? BlkifOperation.Write : BlkifOperation.Read;
                pending.Add((h.SubmitAsync(session, op, (ulong)(at / 512), buffers[i], len, (ulong)i), write, at, len, buffers[i]));
            }
            foreach (var p in pending)
            {
                Assert.That(await p.Done.WaitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(BlkifStatus.Okay));
                if (!p.Write)
                    Assert.That(Span(p.Buf, p.Len).SequenceEqual(model.AsSpan((int)p.At, p.Len)), Is.True, $"read of {p.Len} at {p.At} differs");
            }
        }
        Assert.That(await h.SubmitAsync(session, BlkifOperation.FlushDiskCache, 0, 0, 0, 99).WaitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(BlkifStatus.Okay));
        Assert.That(tap.Connects, Is.EqualTo(1), "one connection served everything");
        Assert.That(h.Diagnostics, Is.Empty);
        try { Directory.Delete(dir, true); } catch (IOException) { }
    }

    private static unsafe Span<byte> Span(nint p, int len) => new((void*)p, len);
}
