using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;

namespace BlkTap.Testing.Rigs;

/// <summary>
/// The emulator rig of the tap tests: a chain of taps (frontend side first) behind the dom0 backend, started either
/// from specs (the rig owns the taps and disposes them with it) or from taps the test made (the test owns them).
/// Plus temp files (<see cref="TempDir"/>) and the byte-array model of the disk (<see cref="ModelWrites"/>).
/// </summary>
/// <remarks>
/// Threading: start and dispose from a test thread. A threaded rig (the default) runs the chain's loop on its own
/// thread; frontend calls (<see cref="Front"/>) may be made from any thread. A deterministic rig
/// (<c>deterministic: true</c>) runs everything on one seeded thread: drive its frontends only inside
/// <see cref="Execute"/>. Every failure of a deterministic rig replays from its seed.
/// </remarks>
public sealed class ChainRig : IAsyncDisposable
{
    private readonly TapChain? _taps;

    private ChainRig(EmulatorRig rig, TapChain? taps, List<string> diagnostics)
    {
        Rig = rig;
        _taps = taps;
        Diagnostics = diagnostics;
    }

    /// <summary>The whole emulated system: dom0 with the chain behind its backend, the guests.</summary>
    public EmulatorRig Rig { get; }
    /// <summary>The chain built from specs (disposed with the rig); a rig started from the test's own taps has none.</summary>
    public TapChain Taps => _taps ?? throw new InvalidOperationException("this rig runs the test's own taps");
    /// <summary>The runtime's diagnostics so far (lock the list to read it while the rig runs).</summary>
    public List<string> Diagnostics { get; }
    /// <summary>The guests' block frontends.</summary>
    public IReadOnlyList<BlkFront> Frontends => Rig.Frontends;
    /// <summary>The first guest's block frontend.</summary>
    public BlkFront Front => Rig.Frontends[0];

    /// <summary>
    /// Starts a rig over the chain <paramref name="specs"/> names (frontend side first, the terminator last), built
    /// with the built-in taps' registry (<see cref="Build(TapContext?, string[])"/>); the rig owns the taps and disposes them.
    /// </summary>
    public static async Task<ChainRig> StartAsync(IEnumerable<string> specs, bool deterministic, int seed = 1, int frontends = 1)
    {
        var taps = Build(new TapContext { Output = TextWriter.Null, Seed = seed }, specs.ToArray());
        var diagnostics = new List<string>();
        try
        {
            var rig = await EmulatorRig.StartAsync(new EmulatorRigOptions
            {
                Frontends = frontends, Deterministic = deterministic, Seed = seed,
                Diagnostics = d => { lock (diagnostics) diagnostics.Add(d.ToString()); },
            }, runtime => TapChain.Register(runtime, taps));
            return new ChainRig(rig, taps, diagnostics);
        }
        catch
        {
            taps.Dispose();
            throw;
        }
    }

    /// <summary>Starts a rig with one frontend over <paramref name="chain"/>, which the caller keeps owning.</summary>
    public static Task<ChainRig> StartAsync(params ITap[] chain) => StartAsync(1, chain);

    /// <summary>Starts a rig with <paramref name="frontends"/> frontends over <paramref name="chain"/>, which the caller keeps owning.</summary>
    public static async Task<ChainRig> StartAsync(int frontends, params ITap[] chain) =>
        new(await EmulatorRig.StartAsync(new EmulatorRigOptions { Frontends = frontends }, rt => TapChain.Register(rt, chain)), null, []);

    /// <summary>Builds a chain from specs with the example taps' registry.</summary>
    public static TapChain Build(TapContext? context, params string[] specs) =>
        Build(ExampleTaps.CreateRegistry(), context, specs);

    /// <summary>
    /// Builds a chain from specs with <paramref name="registry"/> (the built-in taps' registry plus your factories:
    /// <c>var r = ExampleTaps.CreateRegistry(); r.Add(new MyTapFactory(), "mine");</c>).
    /// </summary>
    public static TapChain Build(TapRegistry registry, TapContext? context, params string[] specs) =>
        registry.Build(specs.Select(TapSpec.Parse).ToList(), context ?? new TapContext { Output = TextWriter.Null });

    /// <summary>Deterministic bytes for a write.</summary>
    public static byte[] Pattern(Random random, int sectors)
    {
        var b = new byte[sectors * 512];
        random.NextBytes(b);
        return b;
    }

    /// <summary>Runs <paramref name="work"/> as the emulator runs guest code (on its one thread when deterministic).</summary>
    public Task Execute(Func<Task> work) => Rig.Execute(work);

    /// <summary>Reads the whole disk of the first frontend.</summary>
    public async Task<byte[]> ReadAllAsync()
    {
        var all = new byte[(int)Front.Sectors * 512];
        await Execute(async () =>
        {
            for (int at = 0; at < all.Length; at += 64 * 1024)
            {
                var s = await Front.ReadAsync((ulong)at / 512, all.AsMemory(at, Math.Min(64 * 1024, all.Length - at)));
                if (s != BlkifStatus.Okay) throw new InvalidOperationException($"read at byte {at}: {s}; {string.Join("; ", Diagnostics)}");
            }
        });
        return all;
    }

    /// <summary>Stops the emulated system, then disposes the chain when the rig built it.</summary>
    public async ValueTask DisposeAsync()
    {
        await Rig.DisposeAsync();
        _taps?.Dispose();
    }
}

/// <summary>A temporary directory deleted at dispose. Not thread-safe.</summary>
public sealed class TempDir : IDisposable
{
    /// <summary>Creates the directory.</summary>
    public TempDir() => Directory.CreateDirectory(Path);
    /// <summary>The directory.</summary>
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blktap-cow-" + Guid.NewGuid().ToString("N")[..12]);
    /// <summary>The path of <paramref name="name"/> in the directory.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Creates a base image of <paramref name="bytes"/> random bytes from <paramref name="seed"/>; returns its contents.</summary>
    public byte[] RandomImage(string name, int bytes, int seed)
    {
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        System.IO.File.WriteAllBytes(File(name), data);
        return data;
    }

    /// <summary>Deletes the directory and everything in it (best effort).</summary>
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// The byte-array model of a disk: random writes and flushes through a rig's first frontend, each applied to
/// <c>model</c> as it is sent, so that afterwards the disk must read back exactly as the model
/// (<see cref="ChainRig.ReadAllAsync"/>, <see cref="FirstDifference"/>). Overlapping writes are never in flight
/// together, so the model's order is the disk's. A status other than Okay throws <see cref="InvalidOperationException"/>.
/// </summary>
/// <remarks>Threading: one call at a time per rig and model.</remarks>
public static class ModelWrites
{
    /// <summary>
    /// Sends <paramref name="writes"/> random writes (1..<paramref name="maxSectors"/> sectors, seeded by
    /// <paramref name="seed"/>; about one in ten is a flush instead) with up to <paramref name="queueDepth"/> in
    /// flight, applies each to <paramref name="model"/>, and ends with a flush.
    /// </summary>
    public static async Task RunAsync(ChainRig rig, byte[] model, int seed, int writes, int maxSectors, int queueDepth)
    {
        var rng = new Random(seed);
        ulong sectors = (ulong)model.Length / 512;
        await rig.Execute(async () =>
        {
            var inflight = new List<(ulong At, ulong Count, Task<BlkifStatus> Task)>();
            for (int i = 0; i < writes; i++)
            {
                if (rng.Next(10) == 0)
                {
                    Expect(await rig.Front.FlushAsync(), "flush");
                    continue;
                }
                ulong count = (ulong)rng.Next(1, maxSectors + 1);
                ulong at = (ulong)rng.NextInt64((long)(sectors - count + 1));
                foreach (var f in inflight.Where(f => at < f.At + f.Count && f.At < at + count).ToList())
                    Expect(await f.Task, $"write at sector {f.At}");
                inflight.RemoveAll(f => f.Task.IsCompleted);
                while (inflight.Count >= queueDepth) { await Task.WhenAny(inflight.Select(f => f.Task)); inflight.RemoveAll(f => f.Task.IsCompleted); }
                var data = new byte[(int)count * 512];
                rng.NextBytes(data);
                data.CopyTo(model, (int)at * 512);
                inflight.Add((at, count, rig.Front.WriteAsync(at, data)));
            }
            foreach (var f in inflight) Expect(await f.Task, $"write at sector {f.At}");
            Expect(await rig.Front.FlushAsync(), "final flush");
        });
    }

    private static void Expect(BlkifStatus status, string what)
    {
        if (status != BlkifStatus.Okay) throw new InvalidOperationException($"{what}: {status}, expected Okay");
    }

    /// <summary>Where <paramref name="actual"/> first differs from <paramref name="expected"/>; null when equal.</summary>
    public static string? FirstDifference(byte[] expected, byte[] actual)
    {
        if (expected.Length != actual.Length) return $"length {actual.Length}, expected {expected.Length}";
        int first = expected.AsSpan().CommonPrefixLength(actual);
        return first == expected.Length ? null : $"differs at byte {first} (sector {first / 512})";
    }
}
