using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Security;
using NUnit.Framework.Api;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

namespace BlkTap.Xen.Tests.LabRunner;

/// <summary>
/// The Xen lab's way to run this assembly's tests inside dom0 without vstest: <c>dotnet BlkTap.Xen.Tests.dll
/// --category RequiresXen [--name-contains .Advisories.] [--results FILE]</c>. Under TCG, vstest's host takes 4-6
/// minutes to start before the first test; NUnit's own in-process runner (<see cref="NUnitTestAssemblyRunner"/>, the
/// engine NUnitLite wraps, which this machine's package feed does not serve) starts in seconds from a ReadyToRun
/// publish. `dotnet test` never calls this entry point: vstest loads the assembly as a library.
/// </summary>
/// <remarks>
/// Prints each test's outcome and output (the advisory tests' "XSA-N figure:" lines included) and a closing line
/// "Total tests: N Passed: N Failed: N Skipped: N", the words the lab's tests.sh reads. Exit 0 when nothing failed,
/// 1 when a test failed, 2 for bad arguments. Single-threaded: tests run one after another on NUnit's worker.
/// </remarks>
public static class LabRunnerProgram
{
    /// <summary>Parses the arguments, runs the matching tests, prints and returns the exit code.</summary>
    public static int Main(string[] args)
    {
        string? category = null, nameContains = null, results = null;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            try
            {
                switch (args[i])
                {
                    case "--category": category = Next(); break;
                    case "--name-contains": nameContains = Next(); break;
                    case "--results": results = Next(); break;
                    case "-h" or "--help":
                        Console.WriteLine("usage: dotnet BlkTap.Xen.Tests.dll [--category NAME] [--name-contains TEXT] [--results FILE.xml]");
                        return 0;
                    default: throw new ArgumentException($"unknown argument '{args[i]}' (--help lists them)");
                }
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"lab runner: {e.Message}");
                return 2;
            }
        }

        var filter = TestFilter.FromXml(FilterXml(category, nameContains));
        var runner = new NUnitTestAssemblyRunner(new DefaultTestAssemblyBuilder());
        var started = Process.GetCurrentProcess().StartTime;
        var toMain = DateTime.Now - started;
        runner.Load(typeof(LabRunnerProgram).Assembly, new Dictionary<string, object>());
        int count = runner.CountTestCases(filter);
        // NUnit captures Console.Out for each test's output; the listener writes to the real stdout.
        using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
        // Where start-up time goes under TCG: the runtime to Main, then NUnit finding the tests.
        stdout.WriteLine(FormattableString.Invariant(
            $"lab runner: {count} tests match; {toMain.TotalSeconds:F1} s from exec to Main, {(DateTime.Now - started - toMain).TotalSeconds:F1} s loading the tests"));
        var listener = new ConsoleListener(stdout);
        var clock = Stopwatch.StartNew();
        var result = runner.Run(listener, filter);
        if (results is not null) File.WriteAllText(results, result.ToXml(true).OuterXml);
        stdout.WriteLine(FormattableString.Invariant(
            $"Total tests: {listener.Passed + listener.Failed + listener.Skipped} Passed: {listener.Passed} Failed: {listener.Failed} Skipped: {listener.Skipped} ({clock.Elapsed.TotalSeconds:F1} s)"));
        return listener.Failed == 0 ? 0 : 1;
    }

    /// <summary>NUnit's filter XML for a category and a substring of the full test name (both optional).</summary>
    internal static string FilterXml(string? category, string? nameContains)
    {
        var parts = new List<string>();
        if (category is not null) parts.Add($"<cat>{SecurityElement.Escape(category)}</cat>");
        if (nameContains is not null)
            parts.Add($"<test re=\"1\">{SecurityElement.Escape(System.Text.RegularExpressions.Regex.Escape(nameContains))}</test>");
        return parts.Count switch
        {
            0 => "<filter/>",
            1 => $"<filter>{parts[0]}</filter>",
            _ => $"<filter><and>{string.Concat(parts)}</and></filter>",
        };
    }

    private sealed class ConsoleListener(TextWriter console) : ITestListener
    {
        public int Passed, Failed, Skipped;

        public void TestStarted(ITest test)
        {
            if (!test.IsSuite) console.WriteLine($"Running {test.FullName}");
        }

        public void TestFinished(ITestResult result)
        {
            if (result.Test.IsSuite)
            {
                // A failing OneTimeSetUp fails its children too; they are counted there.
                return;
            }
            var status = result.ResultState.Status;
            var seconds = result.Duration.ToString("F1", CultureInfo.InvariantCulture);
            switch (status)
            {
                case TestStatus.Passed: Passed++; console.WriteLine($"  Passed {result.Test.FullName} [{seconds} s]"); break;
                case TestStatus.Failed: Failed++; console.WriteLine($"  Failed {result.Test.FullName} [{seconds} s]: {result.Message}"); break;
                default: Skipped++; console.WriteLine($"  Skipped {result.Test.FullName}: {result.Message}"); break;
            }
            if (!string.IsNullOrWhiteSpace(result.Output)) console.Write(Indent(result.Output));
            if (status == TestStatus.Failed && !string.IsNullOrWhiteSpace(result.StackTrace)) console.Write(Indent(result.StackTrace));
        }

        public void TestOutput(TestOutput output) => console.Write(output.Text);

        public void SendMessage(TestMessage message) { }

        private static string Indent(string text) =>
            string.Concat(text.Replace("\r", "").TrimEnd('\n').Split('\n').Select(l => "    " + l + "\n"));
    }
}
