using System.Buffers.Binary;
using BlkTap.Examples;
using BlkTap.Nbd;
using BlkTap.Testing;
using BlkTap.Testing.Nbd;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Chains;

/// <summary>
/// Crash consistency, generalised over chains: <c>blktap nbd serve</c> with the chain as a child
/// process; an NBD client writes and flushes; SIGKILL at a seeded moment; restart on the same files;
/// every write acknowledged before the last acknowledged flush must be intact, and every other block
/// must hold its flushed content or one of the writes made to it after.
/// </summary>
public class CrashConsistencyTests
{
    private const int BlockSize = 4096, Blocks = 64;

    /// <summary>The chains under test whose taps this build has (cow and aio join when their factories exist).</summary>
    public static IEnumerable<string> Chains()
    {
        var registry = ExampleTaps.CreateRegistry();
        bool Has(string tap, params string[] options) =>
            registry.Factories.FirstOrDefault(f => f.Name == tap) is { } f && options.All(o => f.Options.Any(x => x.Key == o));
        yield return "img";
        if (Has("aio", "path")) yield return "aio";
        if (Has("cow", "overlay") && Has("img", "path")) yield return "cow+img";
    }

    private static string[] Specs(string chain, string disk, string dir) => chain switch
    {
        "img" => [$"img:path={disk}"],
        "aio" => [$"aio:path={disk}"],
        "cow+img" => [$"cow:overlay={Path.Combine(dir, "overlay.cow")}", $"img:path={disk}"],
        _ => throw new ArgumentException(chain),
    };

    [TestCaseSource(nameof(Chains))]
    public void NbdServe_KilledAtSeededMoments_EverythingFlushedBeforeTheKillIsIntact(string chain)
    {
        int kills = int.TryParse(Environment.GetEnvironmentVariable("BLKTAP_CRASH_KILLS"), out var k) ? k : 8;
        var dir = Directory.CreateTempSubdirectory("blktap-crash-").FullName;
        try
        {
            var disk = Path.Combine(dir, "disk.raw");
            File.WriteAllBytes(disk, new byte[BlockSize * Blocks]);
            var sock = Path.Combine(dir, "nbd.sock");
            var uri = NbdUri.Parse($"nbd+unix:///?socket={sock}");
            var args = new List<string> { "nbd", "serve", "--unix", sock };
            foreach (var s in Specs(chain, disk, dir)) { args.Add("--tap"); args.Add(s); }

            // Per block: the content known durable (flushed), and every content written since.
            var durable = new ulong[Blocks];            // 0 = zeroes
            var since = new List<ulong>[Blocks];
            for (int b = 0; b < Blocks; b++) since[b] = new();
            var random = new Random(1234);
            ulong generation = 0;
            int writes = 0, flushes = 0, inFlightAtKill = 0;
            var serve = Start(args);
            for (int kill = 0; kill < kills; kill++)
            {
                int delayMs = random.Next(5, 150);
                bool killed;
                using (var client = new NbdBlockingClient(uri) { Timeout = TimeSpan.FromSeconds(60) })
                {
                    var acked = new List<(int Block, ulong Gen)>();
                    var victim = serve;
                    // True when SIGKILL went to the live server (kill(1) succeeded): a crash happened mid-workload.
                    var killer = Task.Run(() =>
                    {
                        Thread.Sleep(delayMs);
                        return !victim.HasExited && Peers.Run("kill", ["-KILL", victim.Pid.ToString()]).ExitCode == 0;
                    });
                    var buffer = new byte[BlockSize];
                    while (true)
                    {
                        if (random.Next(6) == 0)
                        {
                            var snapshot = acked.ToList();
                            if (!Try(() => client.Flush())) break;
                            flushes++;
                            // The client is sequential: every acknowledged write is covered by this flush (last one per block wins).
                            foreach (var (b, g) in snapshot) { since[b].Clear(); durable[b] = g; }
                            acked.RemoveAll(snapshot.Contains);
                            continue;
                        }
                        int block = random.Next(Blocks);
                        ulong gen = ++generation;
                        Fill(buffer, block, gen);
                        since[block].Add(gen); // from the moment it is sent, it may land
                        if (!Try(() => client.Write((ulong)block * BlockSize, buffer))) { inFlightAtKill++; break; }
                        writes++;
                        acked.Add((block, gen));
                    }
                    killed = killer.Result;
                }
                int exit = serve.WaitExit(TimeSpan.FromSeconds(60));
                // A server that exited 0 without being killed stopped by itself: a bug. A killed one must not report 0; once
                // in a full suite run (never alone) the test host reported 0 for a server it had just killed with SIGKILL
                // (stderr showed no shutdown at all), so that case is reported, and the data check below still runs.
                Assert.That(exit != 0 || killed, Is.True, $"the server exited {exit} by itself before kill {kill + 1} ({delayMs} ms in)\n{serve.Output}");
                if (exit == 0) TestContext.Out.WriteLine($"kill {kill + 1}: SIGKILL was delivered, yet the exit status read back is 0");
                serve.Dispose();

                serve = Start(args);
                using var check = new NbdBlockingClient(uri) { Timeout = TimeSpan.FromSeconds(60) };
                var read = new byte[BlockSize];
                for (int b = 0; b < Blocks; b++)
                {
                    Assert.That(check.Read((ulong)b * BlockSize, read), Is.EqualTo(0), $"read block {b} after restart");
                    ulong found = Identify(read, b);
                    bool ok = found == durable[b] || since[b].Contains(found);
                    Assert.That(ok, Is.True, $"{chain}, kill {kill + 1}: block {b} holds {(found == ulong.MaxValue ? "garbage" : "generation " + found)}; " +
                        $"flushed generation {durable[b]}, written since: [{string.Join(",", since[b])}]");
                    // What survived is the new baseline (it is on disk now; the next flush makes it durable).
                    if (found != durable[b]) { since[b].Clear(); since[b].Add(found); }
                }
            }
            serve.Dispose();
            TestContext.Out.WriteLine($"{chain}: {kills} kill points, {writes} acknowledged writes, {flushes} acknowledged flushes, {inFlightAtKill} writes cut by the kill; lost after a flush: none");
            Assert.That(writes, Is.GreaterThan(kills), "the workload ran between kills");
        }
        finally { Directory.Delete(dir, true); }
    }

    private static BlktapServeProcess Start(List<string> args)
    {
        var p = new BlktapServeProcess([.. args]);
        p.WaitReady();
        return p;
    }

    private static bool Try(Func<int> op)
    {
        try { return op() == 0; }
        catch (Exception e) when (e is IOException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException or ObjectDisposedException or NbdProtocolException) { return false; }
    }

    // Each 4 KiB block: generation (u64) and block number (u32) repeated, so a torn or misplaced block is garbage.
    private static void Fill(byte[] buffer, int block, ulong gen)
    {
        for (int i = 0; i < buffer.Length; i += 16)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(i), gen);
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(i + 8), (uint)block);
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(i + 12), 0xB10C7A90);
        }
    }

    /// <summary>The generation a block holds: 0 for zeroes, ulong.MaxValue for anything else.</summary>
    private static ulong Identify(byte[] data, int block)
    {
        if (data.AsSpan().IndexOfAnyExcept((byte)0) < 0) return 0;
        ulong gen = BinaryPrimitives.ReadUInt64LittleEndian(data);
        var expected = new byte[data.Length];
        Fill(expected, block, gen);
        return expected.AsSpan().SequenceEqual(data) ? gen : ulong.MaxValue;
    }
}
