using System.Text.Json;
using BlkTap.Emulator;
using BlkTap.Emulator.PowerCut;

namespace BlkTap.Cli.Commands;

/// <summary>What one <c>blktap fuzz</c> run found: the fuzzer's rounds, the fault rounds, the power cuts. Filled on one thread.</summary>
internal sealed class FuzzResults
{
    public int Seed;
    public string Chain = "";
    public FuzzReport? Fuzz;
    public int FaultRounds;
    public FaultSimulationReport? Faults;
    public PowerCutReport? PowerCuts;

    /// <summary>Every broken invariant: failing fuzz rounds, failing fault rounds, power-cut violations.</summary>
    public long Violations => (Fuzz?.Failures.Count ?? 0) + (Faults?.Failures.Count ?? 0) + (PowerCuts?.Violations ?? 0);
}

/// <summary><c>blktap fuzz</c>'s report: the text lines, or one JSON object. Stateless.</summary>
internal static class FuzzReportWriter
{
    public static string VariantName(PowerCutVariant v) => v switch
    {
        PowerCutVariant.SyncedOnly => "synced-only",
        PowerCutVariant.RandomSubset => "random-subset",
        _ => "torn-write",
    };

    public static void WriteText(TextWriter o, FuzzResults r)
    {
        o.WriteLine($"fuzz: seed {r.Seed}, chain {r.Chain}");
        if (r.Fuzz is { } f)
        {
            o.WriteLine($"  {f.Rounds} rounds in {f.Elapsed.TotalSeconds:F1} s: {f.HonestOperations} honest operations checked against the model, {f.HostileRequests} hostile requests checked ({f.HostileRequestsPerSecond:F0} hostile requests/s)");
            o.WriteLine($"  hostile kinds: {string.Join(", ", f.HostileKinds.OrderByDescending(k => k.Value).Select(k => $"{k.Key} {k.Value}"))}");
            o.WriteLine($"  faults: {f.Delayed} reordered, {f.InjectedFailures} injected errors, {f.SpuriousNotifications} spurious notifications, {f.ProtocolBreaks} ring-protocol breaks, {f.DomainDeaths} guests destroyed mid-flight");
            foreach (var x in f.Failures)
                o.WriteLine($"  FAILED round seed {x.RoundSeed} (reproduce: blktap fuzz --round {x.RoundSeed} --round-size {x.Requests}): {x.Description}");
        }
        if (r.Faults is { } faults)
        {
            o.WriteLine($"  fault simulation: {r.FaultRounds} rounds in {faults.Elapsed.TotalSeconds:F1} s ({string.Join(", ", faults.Rounds.Select(k => $"{k.Key} {k.Value}"))}): {faults.Operations} operations, {faults.DeviceFailures} storage failures, {faults.DeathsWithRequestsInFlight} blkback deaths with requests in flight, {faults.CoalescedNotifications} coalesced notifications");
            foreach (var x in faults.Failures)
                o.WriteLine($"  FAILED fault round seed {x.RoundSeed} ({x.Kind}): {x.Description}");
        }
        if (r.PowerCuts is { } p)
        {
            o.WriteLine($"  power cuts: {p.PowerCuts} in {p.Elapsed.TotalSeconds:F1} s ({string.Join(", ", p.ByChain.Select(k => $"{k.Key} {k.Value}"))}; {string.Join(", ", p.ByVariant.Select(k => $"{VariantName(k.Key)} {k.Value}"))}): "
                + $"{p.AcknowledgedWrites} acknowledged writes, {p.CompletedFlushes} completed flushes, {p.CutsWithRequestsInFlight} cuts with requests in flight, {p.TornWrites} torn writes, {p.SectorsChecked} sectors checked; "
                + $"{p.Violations} violations, {p.LostAfterFlush} sectors lost after a flush");
            foreach (var x in p.Failures)
                o.WriteLine($"  FAILED power cut seed {x.CutSeed} (chain {x.Chain}, variant {VariantName(x.Variant)}; reproduce: blktap fuzz --power-cut {x.CutSeed}): {x.Description}");
        }
        o.WriteLine(r.Violations == 0 ? "fuzz: every invariant held" : $"fuzz: {r.Violations} violation(s)");
    }

    public static void WriteJson(TextWriter o, FuzzResults r)
    {
        var f = r.Fuzz;
        var faults = r.Faults;
        var p = r.PowerCuts;
        var obj = new
        {
            seed = r.Seed,
            chain = r.Chain,
            rounds = f?.Rounds ?? 0,
            honest_operations = f?.HonestOperations ?? 0,
            hostile_requests = f?.HostileRequests ?? 0,
            hostile_requests_per_s = Math.Round(f?.HostileRequestsPerSecond ?? 0),
            hostile_kinds = f?.HostileKinds ?? new Dictionary<string, long>(),
            reordered = f?.Delayed ?? 0,
            injected_errors = f?.InjectedFailures ?? 0,
            spurious_notifications = f?.SpuriousNotifications ?? 0,
            protocol_breaks = f?.ProtocolBreaks ?? 0,
            domain_deaths = f?.DomainDeaths ?? 0,
            fuzz_elapsed_s = f?.Elapsed.TotalSeconds ?? 0,
            fuzz_failures = (f?.Failures ?? []).Select(x => new { round_seed = x.RoundSeed, requests = x.Requests, description = x.Description }),
            fault_rounds = faults == null ? 0 : r.FaultRounds,
            fault_operations = faults?.Operations ?? 0,
            storage_failures = faults?.DeviceFailures ?? 0,
            blkback_deaths_in_flight = faults?.DeathsWithRequestsInFlight ?? 0,
            coalesced_notifications = faults?.CoalescedNotifications ?? 0,
            fault_failures = (faults?.Failures ?? []).Select(x => new { round_seed = x.RoundSeed, kind = x.Kind.ToString(), description = x.Description }),
            power_cuts = p?.PowerCuts ?? 0,
            power_cut_chains = p?.ByChain ?? new Dictionary<string, int>(),
            power_cut_variants = (p?.ByVariant ?? new Dictionary<PowerCutVariant, int>()).ToDictionary(k => VariantName(k.Key), k => k.Value),
            acknowledged_writes = p?.AcknowledgedWrites ?? 0,
            completed_flushes = p?.CompletedFlushes ?? 0,
            cuts_with_requests_in_flight = p?.CutsWithRequestsInFlight ?? 0,
            torn_writes = p?.TornWrites ?? 0,
            sectors_checked = p?.SectorsChecked ?? 0,
            power_cut_elapsed_s = p?.Elapsed.TotalSeconds ?? 0,
            lost_after_flush = p?.LostAfterFlush ?? 0,
            power_cut_failures = (p?.Failures ?? []).Select(x => new
            {
                seed = x.CutSeed, chain = x.Chain, variant = VariantName(x.Variant), violations = x.Violations, lost_after_flush = x.LostAfterFlush,
                description = x.Description, reproduce = $"blktap fuzz --power-cut {x.CutSeed}",
            }),
            violations = r.Violations,
            ok = r.Violations == 0,
        };
        o.WriteLine(JsonSerializer.Serialize(obj));
    }
}
