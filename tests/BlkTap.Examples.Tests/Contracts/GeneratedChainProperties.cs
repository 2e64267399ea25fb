using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using BlkTap.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Examples.Tests.Contracts;

/// <summary>
/// Generated chains (<see cref="ChainGenerators.Valid"/>) that contain each example tap in turn, with the files, keys and
/// NBD servers they need (<see cref="ChainResources"/>), run through a verified workload from two guests. Every read must
/// match the model, and each tap in the chain must keep its own promise:
/// <list type="bullet">
/// <item>dump: one line per request and per response, with the operation, range and status that passed it; the first
/// dump of a chain sees every request the guests sent, operation by operation;</item>
/// <item>crypt: no storage below it (image, NBD export, cow overlay) holds a sector of what the guests wrote;</item>
/// <item>cow: no write or discard passes below it, and the base (image or NBD export) is byte for byte unchanged;</item>
/// <item>delay: it delays the requests of its operations that reach it (every one when its least delay is positive), and
/// only delays: the same run without the delay taps gives the same results and the same disk.</item>
/// </list>
/// </summary>
/// <remarks>
/// The chain under test gets passive observers spliced in (a recorder in front of everything, one in front of each dump
/// and each delay, a spy below each cow); they pass every request. Threaded rig: aio, delay and nbd complete from other threads.
/// </remarks>
public class GeneratedChainProperties
{
    /// <summary>Cases per tap: ten taps at 0.1 to 0.3 s a case (twice that with a delay) keep the class at 15 to 30 s on two shared cores.</summary>
    private const int CasesPerTap = 10;
    private const int Frontends = 2;
    private const int OperationsPerFrontend = 60;
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(2);

    private static IEnumerable<string> CoveredTaps() => ChainGenerators.Covered(ExampleTaps.CreateRegistry());

    /// <summary>A generated chain and the seed of its workload.</summary>
    public sealed record GeneratedRun(ChainCase Case, int Seed)
    {
        /// <inheritdoc />
        public override string ToString() => $"{Case}; workload seed {Seed}";
    }

    [TestCaseSource(nameof(CoveredTaps))]
    public void GeneratedChain_ContainingTap_DataIntactAndEveryTapsInvariantHolds(string tap)
    {
        var runs =
            from c in ChainGenerators.Valid(ExampleTaps.CreateRegistry(), including: tap)
            from seed in Gen.Choose(1, 1_000_000)
            select new GeneratedRun(c, seed);
        Prop.ForAll(Arb.From(runs), CheckRun).Check(Config.QuickThrowOnFailure.WithMaxTest(CasesPerTap));
    }

    [Test]
    public void Valid_ExampleRegistry_EveryTapButTheExcludedOnesTakesPart()
    {
        var registry = ExampleTaps.CreateRegistry();
        Assert.That(ChainGenerators.Covered(registry).Concat(ChainGenerators.Excluded.Keys),
            Is.EquivalentTo(registry.Factories.Select(f => f.Name)), "a tap is neither generated nor excluded with a reason");
        var seen = ChainGenerators.Valid(registry).Sample(400).SelectMany(c => c.TapNames).ToHashSet();
        Assert.That(seen, Is.SupersetOf(ChainGenerators.Covered(registry)), "400 generated chains should use every covered tap");
    }

    [Test]
    public void PlaintextScan_ImageWithoutCrypt_FindsTheGuestsWrites()
    {
        // The crypt check is only worth something if it sees plaintext where there is some.
        var c = new ChainCase(["img:path={dir}/img0.raw"], null) { Resources = [new ImageFileResource("img0.raw", 1 << 20, null)] };
        var o = Run(c, seed: 11, keepWrites: true, readDisk: false);
        Assert.That(o.Failure, Is.Null);
        Assert.That(FindPlaintext(o.StorageAfter[0]!, o.Guest.WrittenSectors), Is.Not.Null);
    }

    // ------------------------------------------------------------------ the checks

    private static void CheckRun(GeneratedRun run)
    {
        var c = run.Case;
        var names = c.TapNames.ToList();
        bool hasDelay = names.Contains("delay");
        var o = Run(c, run.Seed, keepWrites: names.Contains("crypt"), readDisk: hasDelay);
        Assert.That(o.Failure, Is.Null, o.Describe());
        Assert.That(o.Results.Sum(r => r.Errors + r.Mismatches), Is.Zero, "every operation succeeds and every read matches the model; " + o.Describe());
        Assert.That(o.Results.Sum(r => r.Operations), Is.EqualTo(Frontends * OperationsPerFrontend), o.Describe());
        for (int i = 0; i < names.Count; i++)
        {
            switch (names[i])
            {
                case "dump": CheckDump(o, i); break;
                case "crypt": CheckCrypt(o, i); break;
                case "cow": CheckCow(o, i); break;
                case "delay": CheckDelayed(o, i); break;
            }
        }
        if (hasDelay) CheckDelayOnlyDelays(run, o);
    }

    private static readonly Regex Latency = new(@" latency=[0-9.]+us", RegexOptions.CultureInvariant);

    private static void CheckDump(Outcome o, int i)
    {
        var dump = (DumpTap)o.Taps[i];
        var seen = o.BeforeTap[i];
        Assert.That(dump.Requests, Is.EqualTo(seen.Requests.Count), $"dump at {i} counts the requests that reached it; {o.Describe()}");
        Assert.That(dump.Responses, Is.EqualTo(seen.Responses.Count), $"dump at {i} counts every response; {o.Describe()}");
        var spec = TapSpec.Parse(o.Specs[i]);
        bool quiet = spec.GetBool("quiet", false);
        string[]? lines = o.DumpText.TryGetValue(i, out var text) ? text.Split('\n', StringSplitOptions.RemoveEmptyEntries) : null;
        if (lines != null)
        {
            Assert.That(lines, Has.All.Match(@"^[<>*] "), $"dump at {i} prints only request, response and control lines");
            var requests = lines.Where(l => l[0] == '>').ToList();
            var responses = lines.Where(l => l[0] == '<').Select(l => Latency.Replace(l, "")).ToList();
            if (quiet)
            {
                Assert.That(requests.Concat(responses), Is.Empty, $"quiet dump at {i} prints no request or response line");
            }
            else
            {
                // One line per request and per response, in the order they passed, with what passed.
                Assert.That(requests, Is.EqualTo(seen.Requests.Select(r => r.DumpLine).ToList()), $"dump at {i}: request lines; {o.Describe()}");
                Assert.That(responses, Is.EqualTo(seen.Responses.Select(r => r.DumpLine).ToList()), $"dump at {i}: response lines; {o.Describe()}");
            }
        }
        if (i != 0) return;
        // Nothing but the guests in front of it: it sees every request they sent and every answer they got.
        Assert.That(dump.Requests, Is.EqualTo(o.Submitted), $"the first dump sees every ring request the guests sent; {o.Describe()}");
        Assert.That(dump.Responses, Is.EqualTo(o.Received), $"the first dump sees every response the guests got; {o.Describe()}");
        if (lines == null || quiet) return;
        long Count(char dir, string op) => lines.Count(l => l[0] == dir && l.Split(' ')[3] == op);
        long okDiscards = lines.Count(l => l[0] == '<' && l.Split(' ')[3] == nameof(BlkifOperation.Discard) && l.Contains(" status=Okay", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(Count('>', nameof(BlkifOperation.Write)), Is.EqualTo(o.Results.Sum(r => r.Writes)), "write lines = the guests' writes (each fits one ring request)");
            Assert.That(okDiscards, Is.EqualTo(o.Results.Sum(r => r.Discards)), "successful discard lines = the guests' successful discards");
            if (o.SupportsFlush)
                Assert.That(Count('>', nameof(BlkifOperation.FlushDiskCache)), Is.EqualTo(o.Results.Sum(r => r.Flushes)), "flush lines = the guests' flushes");
            Assert.That(Count('>', nameof(BlkifOperation.Read)), Is.GreaterThanOrEqualTo(o.Results.Sum(r => r.Reads)), "read lines cover the guests' reads");
            Assert.That(Count('>', nameof(BlkifOperation.Read)) + Count('>', nameof(BlkifOperation.Write)) + Count('>', nameof(BlkifOperation.FlushDiskCache))
                + Count('>', nameof(BlkifOperation.Discard)), Is.EqualTo(o.Submitted), "every request line is a read, write, flush or discard");
        });
    }

    private static void CheckCrypt(Outcome o, int i)
    {
        Assert.That(o.Guest.WrittenSectors, Is.Not.Empty, "the workload wrote something");
        for (int j = i + 1; j < o.Specs.Count; j++)
        {
            var storage = o.StorageAfter[j];
            if (storage == null) continue; // mem: its bytes are not observable from outside
            Assert.That(FindPlaintext(storage, o.Guest.WrittenSectors), Is.Null,
                $"crypt at {i}: the storage of '{o.Specs[j]}' below it holds plaintext; {o.Describe()}");
        }
    }

    private static void CheckCow(Outcome o, int i)
    {
        Assert.That(o.BelowCow[i].Changes, Is.Empty, $"cow at {i}: requests that change data passed below it; {o.Describe()}");
        int last = o.Specs.Count - 1;
        if (o.StorageBefore is { } before)
            Assert.That(o.StorageAfter[last]!.AsSpan().SequenceEqual(before), Is.True, $"cow at {i}: the base '{o.Specs[last]}' changed; {o.Describe()}");
    }

    private static void CheckDelayed(Outcome o, int i)
    {
        var spec = TapSpec.Parse(o.Specs[i]);
        long least = spec.GetInt64("ms", spec.GetInt64("min", 0)), most = spec.GetInt64("ms", spec.GetInt64("max", 0));
        var ops = (spec.Get("ops") ?? "read+write+flush+discard").Split('+');
        // The requests of its operations that reached it (a cow above answers writes and flushes itself).
        long targeted = o.BeforeTap[i].Operations.Count(op => op switch
        {
            BlkifOperation.Read => ops.Contains("read"),
            BlkifOperation.Write or BlkifOperation.WriteBarrier => ops.Contains("write"),
            BlkifOperation.FlushDiskCache => ops.Contains("flush"),
            BlkifOperation.Discard => ops.Contains("discard"),
            _ => false,
        });
        long delayed = ((DelayTap)o.Taps[i]).Delayed;
        if (least > 0) Assert.That(delayed, Is.EqualTo(targeted), $"delay at {i} delays every request of its operations; {o.Describe()}");
        else if (most == 0) Assert.That(delayed, Is.Zero, $"delay at {i} with no delay; {o.Describe()}");
        else Assert.That(delayed, Is.InRange(0, targeted), $"delay at {i} delays only requests of its operations; {o.Describe()}");
    }

    private static void CheckDelayOnlyDelays(GeneratedRun run, Outcome delayed)
    {
        var without = run.Case with { Specs = [.. run.Case.Specs.Where(s => ChainCase.TapName(s) != "delay")] };
        var plain = Run(without, run.Seed, keepWrites: false, readDisk: true);
        Assert.That(plain.Failure, Is.Null, plain.Describe());
        static string Summary(FrontendResult r) =>
            $"{r.Name}: ops {r.Operations} reads {r.Reads} writes {r.Writes} flushes {r.Flushes} discards {r.Discards} bytes {r.BytesRead}/{r.BytesWritten} errors {r.Errors} mismatches {r.Mismatches}";
        Assert.That(delayed.Results.Select(Summary), Is.EqualTo(plain.Results.Select(Summary)), "the same workload without the delay taps gives the same results");
        Assert.That(delayed.Disk, Is.Not.Null.And.Length.EqualTo(plain.Disk!.Length));
        int first = delayed.Disk!.AsSpan().CommonPrefixLength(plain.Disk);
        Assert.That(first, Is.EqualTo(plain.Disk.Length), $"the disk after the run differs from the run without delay taps at byte {first}; {delayed.Describe()}");
    }

    /// <summary>Where <paramref name="storage"/> holds one of <paramref name="sectors"/> (at any 8-byte aligned offset), or null.</summary>
    private static string? FindPlaintext(byte[] storage, IReadOnlyList<byte[]> sectors)
    {
        var byFirstWord = new Dictionary<ulong, List<byte[]>>();
        foreach (var s in sectors)
        {
            ulong key = BitConverter.ToUInt64(s, 0);
            if (!byFirstWord.TryGetValue(key, out var list)) byFirstWord[key] = list = [];
            list.Add(s);
        }
        var words = MemoryMarshal.Cast<byte, ulong>(storage.AsSpan(0, storage.Length & ~7));
        for (int w = 0; (long)w * 8 + BlkifConstants.SectorSize <= storage.Length; w++)
        {
            if (!byFirstWord.TryGetValue(words[w], out var candidates)) continue;
            foreach (var s in candidates)
                if (storage.AsSpan(w * 8, BlkifConstants.SectorSize).SequenceEqual(s)) return $"a written sector's plaintext at byte {w * 8}";
        }
        return null;
    }

    // ------------------------------------------------------------------ one run

    private sealed class Outcome
    {
        public required IReadOnlyList<string> Specs;
        public required TapChain Taps;
        public required TrafficRecorder Guest;
        public required Dictionary<int, TrafficRecorder> BeforeTap;
        public required Dictionary<int, BaseSpy> BelowCow;
        public required List<string> Diagnostics;
        public IReadOnlyList<FrontendResult> Results = [];
        public Exception? Failure;
        public byte[]? Disk;
        public long Submitted, Received;
        public bool SupportsFlush;
        public byte[]? StorageBefore;
        public byte[]?[] StorageAfter = [];
        public Dictionary<int, string> DumpText = [];

        public string Describe()
        {
            var problems = Results.SelectMany(r => r.Problems.Select(p => r.Name + ": " + p)).Take(5);
            lock (Diagnostics)
                return $"chain {string.Join(" → ", Specs)}; {Failure?.ToString() ?? ""} problems: {string.Join("; ", problems)}; diagnostics: {string.Join(" / ", Diagnostics.Take(10))}";
        }
    }

    /// <summary>
    /// Makes the case's resources, builds its chain with the observers spliced in, runs the workload from two guests
    /// (then, with <paramref name="readDisk"/>, reads the whole disk through the first), tears everything down and keeps
    /// what the checks look at.
    /// </summary>
    private static Outcome Run(ChainCase c, int seed, bool keepWrites, bool readDisk)
    {
        using var resources = ChainResources.Create(c);
        int last = c.Specs.Count - 1;
        byte[]? before = c.TapNames.Contains("cow") ? resources.StorageOf(last) : null;
        var taps = resources.Build(new TapContext { Output = TextWriter.Null, Seed = seed });
        var o = new Outcome
        {
            Specs = resources.Specs, Taps = taps, Guest = new TrafficRecorder("guests", keepWrites, tag: false),
            BeforeTap = [], BelowCow = [], Diagnostics = [], StorageBefore = before,
        };
        var spliced = new List<ITap> { o.Guest };
        for (int i = 0; i < taps.Count; i++)
        {
            if (taps[i] is DumpTap or DelayTap) spliced.Add(o.BeforeTap[i] = new TrafficRecorder($"before-{taps[i].Name}{i}", keepWrites: false, tag: taps[i] is DumpTap));
            spliced.Add(taps[i]);
            if (taps[i] is CowTap) spliced.Add(o.BelowCow[i] = new BaseSpy());
        }
        try
        {
            var work = Task.Run(async () =>
            {
                var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
                {
                    Frontends = Frontends, Seed = seed,
                    Diagnostics = d => { lock (o.Diagnostics) o.Diagnostics.Add(d.ToString()); },
                }, rt => TapChain.Register(rt, spliced));
                try
                {
                    o.SupportsFlush = rig.Frontends.All(f => f.SupportsFlush);
                    o.Results = await new VerifiedWorkload(new WorkloadOptions
                    {
                        OperationsPerFrontend = OperationsPerFrontend, Seed = seed, MaxSectors = 32, QueueDepth = 8,
                    }).RunAsync(rig);
                    if (readDisk) o.Disk = await ReadAll(rig.Frontends[0]);
                }
                finally
                {
                    await rig.DisposeAsync();
                    o.Submitted = rig.Frontends.Sum(f => f.RequestsSubmitted);
                    o.Received = rig.Frontends.Sum(f => f.ResponsesReceived);
                }
            });
            if (!work.Wait(RunDeadline)) throw new TimeoutException($"the run did not finish within {RunDeadline.TotalSeconds} s");
        }
        catch (Exception e)
        {
            o.Failure = e;
        }
        finally
        {
            taps.Dispose();
        }
        o.StorageAfter = [.. Enumerable.Range(0, c.Specs.Count).Select(resources.StorageOf)];
        for (int i = 0; i < taps.Count; i++)
            if (TapSpec.Parse(resources.Specs[i]) is { Name: "dump" } spec && spec.Get("file") is { } file)
                o.DumpText[i] = File.ReadAllText(file);
        return o;
    }

    private static async Task<byte[]> ReadAll(BlkFront front)
    {
        var all = new byte[checked((int)front.Sectors * BlkifConstants.SectorSize)];
        const int chunk = 256 * 1024;
        for (int at = 0; at < all.Length; at += chunk)
        {
            var s = await front.ReadAsync((ulong)at / BlkifConstants.SectorSize, all.AsMemory(at, Math.Min(chunk, all.Length - at)));
            if (s != BlkifStatus.Okay) throw new InvalidOperationException($"reading the disk back at byte {at}: {s}");
        }
        return all;
    }

    // ------------------------------------------------------------------ observers

    /// <summary>
    /// Passes every request and remembers what passed it (in dump's own line format) and every response it saw, and
    /// with <c>keepWrites</c> the data of every written sector. With <c>tag</c> it marks the requests it saw (a request
    /// carries at most 8 tags), so a response line says whether its request passed here. Loop thread only; read after
    /// the rig is disposed.
    /// </summary>
    private sealed class TrafficRecorder(string name, bool keepWrites, bool tag) : TapBase(name), IRequestHook, IResponseHook
    {
        public readonly record struct Line(string DumpLine);

        public List<Line> Requests { get; } = [];
        public List<BlkifOperation> Operations { get; } = [];
        public List<Line> Responses { get; } = [];
        public List<byte[]> WrittenSectors { get; } = [];

        public HookResult OnRequest(TapRequest r)
        {
            if (tag) r.SetTag(this, 1);
            Operations.Add(r.Operation);
            Requests.Add(new Line(string.Create(CultureInfo.InvariantCulture,
                $"> {r.Session.Name} id={r.Id} {r.Operation} sector={r.Sector}+{r.SectorCount} segs={r.SegmentCount}")));
            if (keepWrites && r.Operation is BlkifOperation.Write or BlkifOperation.WriteBarrier)
                for (int i = 0; i < r.SegmentCount; i++)
                {
                    var data = r.SegmentData(i);
                    for (int at = 0; at < data.Length; at += BlkifConstants.SectorSize)
                        WrittenSectors.Add(data.Slice(at, BlkifConstants.SectorSize).ToArray());
                }
            return HookResult.Pass;
        }

        public void OnResponse(TapRequest r)
        {
            string via = r.TryGetTag(this, out _) ? "" : " (answered before dump)";
            Responses.Add(new Line(string.Create(CultureInfo.InvariantCulture, $"< {r.Session.Name} id={r.Id} {r.Operation} status={r.Status}{via}")));
        }
    }

    /// <summary>Right below a cow: remembers every request that would change the base (write, barrier, discard). Loop thread only.</summary>
    private sealed class BaseSpy() : TapBase("below-cow"), IRequestHook
    {
        public List<string> Changes { get; } = [];

        public HookResult OnRequest(TapRequest r)
        {
            if (r.Operation is BlkifOperation.Write or BlkifOperation.WriteBarrier or BlkifOperation.Discard) Changes.Add(r.ToString());
            return HookResult.Pass;
        }
    }
}
