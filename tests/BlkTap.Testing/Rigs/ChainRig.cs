using BlkTap.Chains;
using BlkTap.Emulator;
using BlkTap.Examples;
using NUnit.Framework;

namespace BlkTap.Testing.Rigs;

/// <summary>
/// The emulator rig of the tap tests: a chain of taps (frontend side first) behind the dom0 backend, started either
/// from specs (the rig owns the taps and disposes them with it) or from taps the test made (the test owns them).
/// Plus temp files and model helpers.
/// </summary>
internal sealed class ChainRig : IAsyncDisposable
{
    private readonly TapChain? _taps;

    private ChainRig(EmulatorRig rig, TapChain? taps, List<string> diagnostics)
    {
        Rig = rig;
        _taps = taps;
        Diagnostics = diagnostics;
    }

    public EmulatorRig Rig { get; }
    /// <summary>The chain built from specs (disposed with the rig); a rig started from the test's own taps has none.</summary>
    public TapChain Taps => _taps ?? throw new InvalidOperationException("this rig runs the test's own taps");
    public List<string> Diagnostics { get; }
    public IReadOnlyList<BlkFront> Frontends => Rig.Frontends;
    public BlkFront Front => Rig.Frontends[0];

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
        ExampleTaps.CreateRegistry().Build(specs.Select(TapSpec.Parse).ToList(), context ?? new TapContext { Output = TextWriter.Null });

    /// <summary>Deterministic bytes for a write.</summary>
    public static byte[] Pattern(Random random, int sectors)
    {
        var b = new byte[sectors * 512];
        random.NextBytes(b);
        return b;
    }

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

    public async ValueTask DisposeAsync()
    {
        await Rig.DisposeAsync();
        _taps?.Dispose();
    }
}

/// <summary>A temporary directory deleted at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blktap-cow-" + Guid.NewGuid().ToString("N")[..12]);
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Creates a base image of <paramref name="bytes"/> random bytes from <paramref name="seed"/>; returns its contents.</summary>
    public byte[] RandomImage(string name, int bytes, int seed)
    {
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        System.IO.File.WriteAllBytes(File(name), data);
        return data;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Random writes and flushes through a frontend, applied to a model.</summary>
internal static class ModelWrites
{
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
                    Assert.That(await rig.Front.FlushAsync(), Is.EqualTo(BlkifStatus.Okay), "flush");
                    continue;
                }
                ulong count = (ulong)rng.Next(1, maxSectors + 1);
                ulong at = (ulong)rng.NextInt64((long)(sectors - count + 1));
                foreach (var f in inflight.Where(f => at < f.At + f.Count && f.At < at + count).ToList())
                    Assert.That(await f.Task, Is.EqualTo(BlkifStatus.Okay));
                inflight.RemoveAll(f => f.Task.IsCompleted);
                while (inflight.Count >= queueDepth) { await Task.WhenAny(inflight.Select(f => f.Task)); inflight.RemoveAll(f => f.Task.IsCompleted); }
                var data = new byte[(int)count * 512];
                rng.NextBytes(data);
                data.CopyTo(model, (int)at * 512);
                inflight.Add((at, count, rig.Front.WriteAsync(at, data)));
            }
            foreach (var f in inflight) Assert.That(await f.Task, Is.EqualTo(BlkifStatus.Okay), "write");
            Assert.That(await rig.Front.FlushAsync(), Is.EqualTo(BlkifStatus.Okay), "final flush");
        });
    }

    public static string? FirstDifference(byte[] expected, byte[] actual)
    {
        if (expected.Length != actual.Length) return $"length {actual.Length}, expected {expected.Length}";
        int first = expected.AsSpan().CommonPrefixLength(actual);
        return first == expected.Length ? null : $"differs at byte {first} (sector {first / 512})";
    }
}
