using System.Diagnostics;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Cow;

/// <summary>
/// kill -9: a child process (tests/BlkTap.CrashChild) writes and flushes through cow over img; the
/// test kills it at seeded random moments, then a fresh rig over the same files must open the
/// overlay cleanly and show every write of every generation whose "flushed" line was printed.
/// Sectors touched by the one generation in progress may show its data or the older data, nothing else.
/// </summary>
public class CowCrashTests
{
    [TestCase(1)]
    [TestCase(2)]
    public async Task KillNine_AtRandomMoments_FlushedWritesIntactOverlayClean(int testSeed)
    {
        const int killPoints = 10;
        string dll = CrashChild.Dll();
        using var dir = new TempDir();
        var model = dir.RandomImage("base.raw", CrashWorkload.DiskBytes, testSeed);
        string ov = dir.File("ov.cow"), baseRaw = dir.File("base.raw");
        var rng = new Random(testSeed);
        int totalFlushed = 0, inDoubtNew = 0;
        for (int k = 0; k < killPoints; k++)
        {
            int runSeed = testSeed * 1000 + k;
            var psi = new ProcessStartInfo("dotnet", [dll, ov, baseRaw, runSeed.ToString()]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var child = Process.Start(psi)!;
            var stderr = child.StandardError.ReadToEndAsync();
            var lines = new List<string>();
            using var ready = new SemaphoreSlim(0);
            var reader = Task.Factory.StartNew(() =>
            {
                string? l;
                while ((l = child.StandardOutput.ReadLine()) != null)
                {
                    if (l == "ready") ready.Release();
                    else lock (lines) lines.Add(l);
                }
            }, TaskCreationOptions.LongRunning);
            var readyTask = ready.WaitAsync(TimeSpan.FromSeconds(60));
            await Task.WhenAny(readyTask, reader);
            Assert.That(readyTask.IsCompletedSuccessfully && readyTask.Result, Is.True,
                $"kill point {k}: child did not print ready (exited: {child.HasExited}): {(child.HasExited ? await stderr : "")}");
            int delay = rng.Next(0, 300);
            await Task.Delay(delay);
            child.Kill(entireProcessTree: true); // SIGKILL
            await child.WaitForExitAsync();
            await reader;
            int lastFlushed = 0;
            foreach (var l in lines) if (l.StartsWith("flushed ")) lastFlushed = int.Parse(l["flushed ".Length..]);
            Assert.That(lines.All(l => l.StartsWith("flushed ")), Is.True, $"unexpected child output: {string.Join(" | ", lines)} {await stderr}");

            // What must be there: every generation up to lastFlushed. What may be there: generation lastFlushed+1.
            var expected = (byte[])model.Clone();
            for (int g = 1; g <= lastFlushed; g++)
                foreach (var (sector, data) in CrashWorkload.Generation(runSeed, g)) data.CopyTo(expected, (int)sector * 512);
            var maybe = CrashWorkload.Generation(runSeed, lastFlushed + 1);

            await using (var verifier = await ChainRig.StartAsync([$"cow:overlay={ov}", $"img:path={baseRaw}"], deterministic: true, runSeed))
            {
                Assert.That(verifier.Diagnostics, Is.Empty, "the overlay did not open cleanly");
                var actual = await verifier.ReadAllAsync();
                for (int s = 0; s < CrashWorkload.DiskBytes / 512; s++)
                {
                    var got = actual.AsSpan(s * 512, 512);
                    if (got.SequenceEqual(expected.AsSpan(s * 512, 512))) continue;
                    bool fromInProgress = false;
                    foreach (var (sector, data) in maybe)
                        if ((ulong)s >= sector && (ulong)s < sector + (ulong)data.Length / 512 && got.SequenceEqual(data.AsSpan((s - (int)sector) * 512, 512)))
                            fromInProgress = true;
                    Assert.That(fromInProgress, Is.True,
                        $"kill point {k} (after {delay} ms, {lastFlushed} generations flushed): sector {s} holds neither the flushed data nor data of the generation in progress");
                    inDoubtNew++;
                }
                model = actual;
            }
            totalFlushed += lastFlushed;
            TestContext.Out.WriteLine($"kill point {k}: killed after {delay} ms, {lastFlushed} generations flushed and intact");
        }
        TestContext.Out.WriteLine($"{killPoints} kill points, {totalFlushed} flushed generations all intact, {inDoubtNew} sectors showed unflushed data of the generation in progress, nothing flushed lost");
        Assert.That(totalFlushed, Is.GreaterThan(0), "no kill point came after a flush: the test checked nothing");
    }
}
