using System.Text.RegularExpressions;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.Help;

/// <summary>Man-page-grade help: every verb's <c>--help</c> ends with examples of that verb.</summary>
public partial class HelpTests
{
    private static (int Code, string Out) Help(string path)
    {
        var stdout = new StringWriter();
        int rc = CliApp.Run([.. path.Split(' ', StringSplitOptions.RemoveEmptyEntries), "--help"], stdout, new StringWriter());
        return (rc, stdout.ToString());
    }

    /// <summary>Every verb, found by reading the "Commands:" part of each help text from the root down.</summary>
    private static List<string> Verbs()
    {
        var found = new List<string>();
        var queue = new Queue<string>([""]);
        while (queue.Count > 0)
        {
            var path = queue.Dequeue();
            found.Add(path);
            var text = Help(path).Out;
            int at = text.IndexOf("\nCommands:\n", StringComparison.Ordinal);
            if (at < 0) continue;
            foreach (var line in text[(at + 11)..].Split('\n'))
            {
                if (line.Trim().Length == 0 || !line.StartsWith("  ", StringComparison.Ordinal)) break;
                var m = VerbLine().Match(line);
                if (m.Success) queue.Enqueue(path.Length == 0 ? m.Groups[1].Value : $"{path} {m.Groups[1].Value}");
            }
        }
        return found;
    }

    [GeneratedRegex(@"^  ([a-z0-9-]+)\b")]
    private static partial Regex VerbLine();

    [Test]
    public void Help_EveryVerb_ShowsAnExample()
    {
        var verbs = Verbs();
        Assert.That(verbs, Does.Contain("trace export").And.Contain("nbd serve").And.Contain("cow commit").And.Contain("qcow2 check"));
        Assert.That(verbs, Has.Count.GreaterThanOrEqualTo(22));
        foreach (var verb in verbs)
        {
            var (rc, text) = Help(verb);
            Assert.That(rc, Is.Zero, verb);
            Assert.That(text, Does.Contain("\nExamples:\n"), $"'blktap {verb} --help' has no examples");
            // Each example of a verb runs that verb (the root's run any verb).
            var examples = text[text.IndexOf("\nExamples:\n", StringComparison.Ordinal)..];
            Assert.That(examples, Does.Contain($"  blktap {verb}".TrimEnd()), verb);
        }
    }

    [Test]
    public void Help_VerbWithRequiredOptions_PrintsHelpAndExitsZero()
    {
        var (rc, text) = Help("trace export");
        Assert.That(rc, Is.Zero);
        Assert.That(text, Does.Contain("--output-format").And.Contain("--format").And.Contain("--input-format"));
    }

    [Test]
    public void Help_JsonOption_SaysStdoutHoldsOneObject()
    {
        foreach (var verb in new[] { "taps", "run", "demo", "fuzz", "replay", "bench", "trace info", "trace export", "cow commit", "qcow2 create", "qcow2 check" })
            Assert.That(Help(verb).Out, Does.Contain("--json").And.Contain("exactly one JSON object"), verb);
    }
}
