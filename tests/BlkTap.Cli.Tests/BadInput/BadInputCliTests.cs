using System.Buffers.Binary;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.BadInput;

/// <summary>
/// Every verb fed a bad file at start (a corrupt cow overlay, a broken plugin assembly, a crypt key of the wrong
/// size, an NBD server that answers garbage) exits 2 with one line naming the file and the problem, and builds
/// nothing. Corrupt traces for <c>replay</c> and <c>trace</c> are in Replay/BadTraceTests; a shared memory truncated
/// while <c>shm serve</c> serves it is in <see cref="ShmTruncationCliTests"/>.
/// </summary>
[TestFixture]
public sealed class BadInputCliTests : BadInputTestBase
{
    /// <summary><c>run</c> or <c>nbd serve</c> with <paramref name="taps"/>; a serve that started (it should not) is stopped after 60 s.</summary>
    private (int Code, string Out, string Err) RunOrServe(string verb, params string[] taps)
    {
        if (verb == "run") return Cli(["run", .. taps, "--frontends", "1", "--workload", "random:ops=20"]);
        var o = new StringWriter();
        var e = new StringWriter();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        int code = CliApp.RunAsync(["nbd", "serve", "--unix", PathOf("serve.sock"), .. taps], o, e, stop.Token).GetAwaiter().GetResult();
        Assert.That(stop.IsCancellationRequested, Is.False, $"nbd serve started on bad input and ran until stopped:\n{o}\n{e}");
        return (code, o.ToString(), e.ToString());
    }

    private static IEnumerable<TestCaseData> CowCorruptions()
    {
        foreach (var verb in new[] { "run", "nbd" })
        {
            yield return new TestCaseData(verb, "magic", "is not a cow overlay (bad magic)").SetName($"{Verb(verb)}_CowOverlayBadMagic_ExitTwoOneLine");
            yield return new TestCaseData(verb, "header", "too short (100 bytes) to hold a header").SetName($"{Verb(verb)}_CowOverlayTruncatedHeader_ExitTwoOneLine");
            yield return new TestCaseData(verb, "map-offset", "map/data offsets do not match").SetName($"{Verb(verb)}_CowOverlayMapOffsetPastEnd_ExitTwoOneLine");
            yield return new TestCaseData(verb, "map-cut", "(truncated or extended)").SetName($"{Verb(verb)}_CowOverlayMapCutShort_ExitTwoOneLine");
        }
    }

    private static string Verb(string verb) => verb == "run" ? "Run" : "NbdServe";

    [TestCaseSource(nameof(CowCorruptions))]
    public void Cow_CorruptOverlay_ExitTwoNamingTheFile(string verb, string corruption, string problem)
    {
        var (good, image) = GoodOverlay();
        var bytes = File.ReadAllBytes(good);
        var bad = PathOf("bad.cow");
        switch (corruption)
        {
            case "magic": bytes[0] ^= 0x20; File.WriteAllBytes(bad, bytes); break;
            case "header": File.WriteAllBytes(bad, bytes[..100]); break;
            case "map-offset":
                // A map that starts past the end of the file, under a header whose checksum is right.
                BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(32), (ulong)bytes.Length * 16);
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(56), Crc32C(bytes.AsSpan(0, 56)));
                File.WriteAllBytes(bad, bytes);
                break;
            case "map-cut": File.WriteAllBytes(bad, bytes[..(4096 + 10)]); break;
        }
        var before = File.ReadAllBytes(bad);
        AssertOneLine(RunOrServe(verb, "--tap", $"cow:overlay={bad}", "--tap", $"img:path={image}"), $"'{bad}'", problem);
        Assert.That(File.ReadAllBytes(bad), Is.EqualTo(before), "the bad overlay is left as it was");
    }

    [TestCase("run")]
    [TestCase("nbd")]
    public void Crypt_KeyFileOfWrongSize_ExitTwoNamingTheFile(string verb)
    {
        var key = PathOf("key.bin");
        File.WriteAllBytes(key, Enumerable.Range(1, 48).Select(i => (byte)i).ToArray());
        AssertOneLine(RunOrServe(verb, "--tap", $"crypt:keyfile={key}", "--tap", "mem:size=4M"), $"'{key}'", "holds 48 bytes; need 32");
    }

    [TestCase("taps")]
    [TestCase("run")]
    [TestCase("nbd")]
    public void Plugins_GarbageNamedDll_ExitTwoNamingTheFile(string verb)
    {
        var plugins = Directory.CreateDirectory(PathOf("plugins")).FullName;
        var dll = Path.Combine(plugins, "Garbage.dll");
        File.WriteAllBytes(dll, Enumerable.Range(0, 4096).Select(i => (byte)(i * 31)).ToArray());
        var r = verb == "taps" ? Cli("taps", "--plugins", plugins) : RunOrServe(verb, "--plugins", plugins, "--tap", "mem:size=4M");
        AssertOneLine(r, $"'{dll}'", "not a .NET assembly");
    }

    [TestCase("taps")]
    [TestCase("run")]
    public void Plugins_FactoryThrowsInConstructor_ExitTwoNamingTheFile(string verb)
    {
        var plugins = Directory.CreateDirectory(PathOf("plugins")).FullName;
        var dll = Path.Combine(plugins, "Boom.dll");
        WriteThrowingPlugin(dll, inConstructor: true);
        var r = verb == "taps" ? Cli("taps", "--plugins", plugins) : RunOrServe(verb, "--plugins", plugins, "--tap", "mem:size=4M");
        AssertOneLine(r, dll, "Broken.BoomTapFactory threw InvalidOperationException", "boom in the constructor");
    }

    [TestCase("run")]
    [TestCase("nbd")]
    public void Plugins_FactoryThrowsInCreate_ExitTwoNamingTheTapAndFile(string verb)
    {
        var plugins = Directory.CreateDirectory(PathOf("plugins")).FullName;
        var dll = Path.Combine(plugins, "Boom.dll");
        WriteThrowingPlugin(dll, inConstructor: false);
        var listed = Cli("taps", "--plugins", plugins);
        Assert.That(listed.Code, Is.Zero, listed.Err);
        Assert.That(listed.Out, Does.Contain("boom"), "the factory itself loads");
        AssertOneLine(RunOrServe(verb, "--plugins", plugins, "--tap", "boom"), "tap 'boom'", dll, "InvalidOperationException: boom in Create");
    }

    [TestCase("run")]
    [TestCase("nbd")]
    public void Nbd_ServerAnswersGarbage_ExitTwoNamingTheServer(string verb)
    {
        using var garbage = new GarbageServer(PathOf("garbage.sock"));
        AssertOneLine(RunOrServe(verb, "--tap", $"nbd:uri={garbage.Uri},timeout=60"), garbage.Uri, "not an NBD server");
    }
}
