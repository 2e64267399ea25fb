using System.Text.Json;

namespace BlkTap.Bench;

/// <summary>
/// Every benchmark group <c>blktap bench</c> runs, in order, choosing groups by name and running them so that one
/// failing group is reported while the others still run.
/// </summary>
/// <remarks>Threading: <see cref="Groups"/> and <see cref="Select"/> are safe from any thread; <see cref="Run"/> runs on
/// the caller's thread, one group at a time (the groups share the <see cref="BenchContext"/>).</remarks>
public static class BenchSuite
{
    private static readonly BenchGroup[] All =
    [
        new("runtime", "runtime", RuntimeBenchmarks.Run),
        new("emulator", "emulator", EmulatorBenchmarks.Run, NeedsRuntimeBaselines: true),
        new("grants", "persistent grants and queues", GrantBenchmarks.Run),
        new("img", "img vs raw", ImgBenchmarks.Run),
        new("nbd", "nbd export", NbdBenchmarks.Run),
        new("cow", "cow", CowBenchmarks.Run),
        new("qcow2", "qcow2 vs qemu-nbd", Qcow2Benchmarks.Run),
        new("replay", "replay", ReplayBenchmarks.Run, NeedsRuntimeBaselines: true),
    ];

    /// <summary>Every group, in the order they run (and appear on the results page).</summary>
    public static IReadOnlyList<BenchGroup> Groups => All;

    /// <summary>
    /// The groups <paramref name="only"/> names, comma-separated and case-insensitive (all when null), in run order, with
    /// <c>runtime</c> added when a chosen group needs its baselines; <paramref name="unknown"/> names a bad one (then
    /// the list is empty).
    /// </summary>
    public static List<BenchGroup> Select(string? only, out string? unknown)
    {
        unknown = null;
        if (only == null) return [.. All];
        var names = only.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (names.Length == 0) { unknown = only; return []; }
        foreach (var n in names)
            if (!All.Any(g => g.Name.Equals(n, StringComparison.OrdinalIgnoreCase))) { unknown = n; return []; }
        bool wanted(BenchGroup g) => names.Any(n => n.Equals(g.Name, StringComparison.OrdinalIgnoreCase));
        bool needsRuntime = All.Any(g => wanted(g) && g.NeedsRuntimeBaselines);
        return All.Where(g => wanted(g) || (needsRuntime && g.Name == "runtime")).ToList();
    }

    /// <summary>
    /// Runs one group after a full garbage collection, adding its lines to <paramref name="results"/>. A group that
    /// throws (an <see cref="InvalidOperationException"/>, an I/O, access, JSON or process error) adds
    /// "<c>title: message</c>" to <paramref name="failures"/> instead; any other exception propagates.
    /// </summary>
    public static void Run(BenchContext context, BenchGroup group, List<BenchResult> results, List<string> failures)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(group);
        // What a previous group left (emulated guests' memory, mem disks, finalizers) must not be collected during this one.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        try
        {
            foreach (var r in group.Run(context)) results.Add(r);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException or JsonException or System.ComponentModel.Win32Exception)
        {
            failures.Add($"{group.Title}: {ex.Message}");
        }
    }
}
