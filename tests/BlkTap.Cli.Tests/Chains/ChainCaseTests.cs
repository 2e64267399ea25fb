using BlkTap.Chains;
using BlkTap.Cli;
using BlkTap.Examples;
using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Cli.Tests.Chains;

/// <summary>Generated chains through <c>blktap run</c>: valid ones run a verified workload, invalid ones exit 2 naming the problem.</summary>
public class ChainCaseTests
{
    [FsCheck.NUnit.Property(Arbitrary = [typeof(BlkTapArbitraries)], MaxTest = 40)]
    public void BlktapRun_GeneratedChain_RunsVerifiedOrExitsTwoNamingTheProblem(ChainCase chain)
    {
        if (chain.Specs.Count == 0)
        {
            // `--tap` is required by the command line; the registry is what names the empty chain.
            var ex = Assert.Throws<ChainSpecException>(() => ExampleTaps.CreateRegistry().Build([], new TapContext()));
            Assert.That(ex!.Message, Does.Contain(chain.ExpectedError));
            return;
        }
        // Image files, keys and NBD servers the chain names are made in a scratch directory first.
        using var resources = ChainResources.Create(chain);
        var args = new List<string> { "run", "--frontends", "1", "--workload", "random:ops=20", "--seed", "3" };
        // aio, delay and nbd complete requests from other threads: those chains run threaded.
        if (!chain.NeedsThreads) args.Add("--deterministic");
        foreach (var s in resources.Specs) { args.Add("--tap"); args.Add(s); }
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CliApp.Run([.. args], stdout, stderr);
        if (chain.IsValid && chain.Resources.OfType<LowerVbdResource>().Any())
        {
            // The lower vbd lives in this process's emulator rig; 'blktap run' has no vbd for the tap to connect to and must say so.
            Assert.That(rc, Is.EqualTo(2), $"{chain}\n{stdout}\n{stderr}");
            Assert.That(stderr.ToString().Trim(), Does.StartWith("blktap: ").And.Contain("tap 'vbd'").And.Contain("xen serve"));
        }
        else if (chain.IsValid)
        {
            Assert.That(rc, Is.EqualTo(0), $"{chain}\n{stdout}\n{stderr}");
        }
        else
        {
            Assert.That(rc, Is.EqualTo(2), $"{chain}\n{stdout}\n{stderr}");
            var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.That(lines, Has.Length.EqualTo(1), stderr.ToString());
            Assert.That(lines[0], Does.StartWith("blktap: ").And.Contain(chain.ExpectedError));
        }
    }
}
