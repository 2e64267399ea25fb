using System.Text.Json;
using BlkTap.Cli;
using NUnit.Framework;

namespace BlkTap.Bench.Tests;

/// <summary><c>blktap bench --quick --json --only grants</c>: the persistent-grant and multi-queue lines, with their figures.</summary>
[TestFixture]
public class GrantBenchTests
{
    private const string Without = "grants: map+unmap operations per request, no persistent grants (1 guest, 4 KiB reads)";
    private const string With = "grants: map+unmap operations per request, persistent grants, steady state (1 guest, 4 KiB reads)";
    private const string OneRing = "emulator (threaded): 4 guests, 1 ring each, qd 32 each, 4 KiB reads";
    private const string FourRings = "emulator (threaded): 4 guests, 4 rings each (multi-queue), qd 32 each, 4 KiB reads";

    [Test]
    public void BenchOnlyGrants_Json_CarriesGrantOperationsAndQueueRates()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(["bench", "--quick", "--json", "--only", "grants"], stdout, stderr);
        Assert.That(code, Is.EqualTo(CliApp.Ok), stderr.ToString());
        using var doc = JsonDocument.Parse(stdout.ToString());
        var results = doc.RootElement.GetProperty("results").EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!, r => r.Clone());
        Assert.That(results.Keys, Is.EquivalentTo(new[] { Without, With, OneRing, FourRings }));

        // 4 KiB reads are one segment each: one map and one unmap per request without the feature; with it every page
        // comes from the pool the first burst of 32 requests filled, so nothing is mapped in the measured round.
        Assert.That(results[Without].GetProperty("ours").GetDouble(), Is.EqualTo(2.0).Within(0.01));
        Assert.That(results[With].GetProperty("ours").GetDouble(), Is.Zero);
        Assert.That(results[With].GetProperty("theirs").GetDouble(), Is.EqualTo(2.0).Within(0.01));
        Assert.That(results[OneRing].GetProperty("ours").GetDouble(), Is.GreaterThan(0));
        Assert.That(results[FourRings].GetProperty("ours").GetDouble(), Is.GreaterThan(0));
        Assert.That(results[FourRings].GetProperty("theirs").GetDouble(), Is.EqualTo(results[OneRing].GetProperty("ours").GetDouble()));
        Assert.That(results[FourRings].GetProperty("ratio").ValueKind, Is.EqualTo(JsonValueKind.Number));
    }
}
