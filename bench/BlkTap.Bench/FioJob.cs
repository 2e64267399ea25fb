using System.Diagnostics;
using System.Text.Json;

namespace BlkTap.Bench;

/// <summary>One fio job over NBD (ioengine=nbd, libnbd): what it does and how its figure is read.</summary>
/// <param name="Label">Short name for result lines.</param>
/// <param name="Rw">fio's rw= (randread, randwrite, read).</param>
/// <param name="BlockSize">fio's bs=.</param>
/// <param name="IoDepth">fio's iodepth=.</param>
/// <param name="Bandwidth">True to report MiB/s, false to report IOPS.</param>
internal sealed record FioJob(string Label, string Rw, string BlockSize, int IoDepth, bool Bandwidth)
{
    /// <summary>The jobs of the NBD comparison.</summary>
    public static readonly FioJob[] Standard =
    [
        new("4 KiB randread, iodepth 32", "randread", "4k", 32, false),
        new("4 KiB randwrite, iodepth 32", "randwrite", "4k", 32, false),
        new("1 MiB sequential read, iodepth 32", "read", "1m", 32, true),
    ];

    /// <summary>The unit of <see cref="Run"/>'s figure.</summary>
    public string Unit => Bandwidth ? "MiB/s" : "IOPS";

    /// <summary>The fio command line (without the program), for the results page.</summary>
    public string Describe(int seconds) =>
        $"fio --ioengine=nbd --uri=nbd+unix:///?socket=S --rw={Rw} --bs={BlockSize} --iodepth={IoDepth} --time_based --runtime={seconds}";

    /// <summary>
    /// Runs the job against <paramref name="uri"/> for <paramref name="seconds"/> and returns IOPS or MiB/s.
    /// Throws <see cref="InvalidOperationException"/> with fio's own words when fio fails or reports an error.
    /// </summary>
    public double Run(string fio, string uri, int seconds, string scratchDirectory) => Measure(fio, uri, seconds, scratchDirectory).Figure;

    /// <summary>
    /// Runs the job as <see cref="Run"/> does and returns its figure with the number of requests fio completed
    /// (its <c>total_ios</c>), which CPU time per request is divided by.
    /// </summary>
    public FioOutcome Measure(string fio, string uri, int seconds, string scratchDirectory)
    {
        var output = Path.Combine(scratchDirectory, "fio.json");
        var psi = new ProcessStartInfo(fio) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            "--name=bench", "--ioengine=nbd", $"--uri={uri}", $"--rw={Rw}", $"--bs={BlockSize}", $"--iodepth={IoDepth}",
            "--time_based", $"--runtime={seconds}", "--randrepeat=1", "--norandommap", "--group_reporting",
            "--output-format=json", $"--output={output}",
        }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start fio");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(seconds + 60)))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"fio {Rw} did not finish");
        }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"fio {Rw} exited {p.ExitCode}: {FirstLine(stderr.Result + stdout.Result)}");
        var text = File.ReadAllText(output);
        int brace = text.IndexOf('{');
        if (brace < 0) throw new InvalidOperationException($"fio {Rw} wrote no JSON: {FirstLine(text)}");
        using var doc = JsonDocument.Parse(text.AsMemory(brace));
        var job = doc.RootElement.GetProperty("jobs")[0];
        if (job.GetProperty("error").GetInt32() != 0) throw new InvalidOperationException($"fio {Rw} reported error {job.GetProperty("error").GetInt32()}");
        var side = job.GetProperty(Rw.Contains("write") ? "write" : "read");
        double figure = Bandwidth ? side.GetProperty("bw_bytes").GetDouble() / (1 << 20) : side.GetProperty("iops").GetDouble();
        return new FioOutcome(figure, side.GetProperty("total_ios").GetInt64());
    }

    private static string FirstLine(string s)
    {
        s = s.Trim();
        int nl = s.IndexOf('\n');
        return nl < 0 ? s : s[..nl];
    }
}

/// <summary>What one fio job measured: IOPS or MiB/s, and how many requests it completed.</summary>
/// <remarks>Threading: an immutable value.</remarks>
internal readonly record struct FioOutcome(double Figure, long Requests);
