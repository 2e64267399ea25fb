using BlkTap.Chains;
using FsCheck;
using FsCheck.Fluent;

namespace BlkTap.Testing;

/// <summary>
/// A chain of <c>--tap</c> specs (frontend side first) and what <see cref="TapRegistry.Build"/> must say
/// about it: <see cref="ExpectedError"/> null for a valid chain, otherwise a fragment of the
/// <see cref="ChainSpecException"/> message naming the problem.
/// </summary>
/// <param name="Specs">The spec texts, as given to <c>--tap</c>.</param>
/// <param name="ExpectedError">Null, or text the error message must contain.</param>
public sealed record ChainCase(IReadOnlyList<string> Specs, string? ExpectedError)
{
    /// <summary>Whether the chain is valid.</summary>
    public bool IsValid => ExpectedError == null;

    /// <inheritdoc />
    public override string ToString() =>
        $"{string.Join(" ", Specs.Select(s => "--tap " + s))}{(ExpectedError == null ? " (valid)" : $" (error: {ExpectedError})")}";
}

/// <summary>
/// FsCheck 3 generators of tap chains from a <see cref="TapRegistry"/>: valid chains (interposers, then
/// exactly one terminator, each with valid options) and invalid ones with the error the registry must
/// report. Taps this class knows option values for (the built-in ones that need no file, peer or
/// wall-clock delay: dump, error, watch, mem) get random valid options; other taps in the registry
/// with no required option (plugins) are used bare.
/// </summary>
/// <remarks>
/// Valid chains run in the emulator without outside resources: the error tap always has <c>rate=0</c>
/// unless <c>allowFailures</c>, dump is quiet. Thread-safe: generators are immutable values.
/// </remarks>
public static class ChainGenerators
{
    private static readonly Gen<string> Ops = Gen.Elements("read", "write", "flush", "discard", "read+write", "write+flush", "read+write+flush+discard");

    /// <summary>Valid option strings for the built-in taps that need no outside resource.</summary>
    public static Gen<string>? OptionsFor(string tap, bool allowFailures = false) => tap switch
    {
        "dump" => Gen.Constant("dump:quiet=true"),
        "error" =>
            from rate in allowFailures ? Gen.Elements("0", "0.01", "0.1") : Gen.Constant("0")
            from ops in Ops
            from seed in Gen.Choose(0, 10_000)
            from status in Gen.Elements("error", "eopnotsupp")
            select $"error:rate={rate},ops={ops},seed={seed},status={status}",
        "watch" => Gen.OneOf(
            from a in Gen.Choose(0, 4096)
            from len in Gen.Choose(0, 64)
            select $"watch:sectors={a}-{a + len}",
            Gen.Choose(1, 8).SelectMany(n => Gen.Choose(0, 255).ArrayOf(n), (_, b) => "watch:pattern=" + Convert.ToHexString(b.Select(x => (byte)x).ToArray()).ToLowerInvariant())),
        "mem" =>
            from size in Gen.Elements("1M", "4M", "16M", "1048576", "2MiB")
            from shared in Gen.Elements("", ",shared=true", ",shared=false")
            select $"mem:size={size}{shared}",
        _ => null,
    };

    private static List<ITapFactory> Usable(TapRegistry registry, bool terminator) =>
        registry.Factories
            .Where(f => f.IsTerminator == terminator && (OptionsFor(f.Name) != null || f.Options.All(o => !o.Required)))
            .Where(f => OptionsFor(f.Name) != null || (f.Name is not ("img" or "aio" or "nbd" or "delay" or "cow" or "crypt")))
            .OrderBy(f => f.Name, StringComparer.Ordinal).ToList();

    private static Gen<string> SpecOf(ITapFactory f, bool allowFailures) => OptionsFor(f.Name, allowFailures) ?? Gen.Constant(f.Name);

    /// <summary>Valid chains: 0..<paramref name="maxInterposers"/> interposers then one terminator.</summary>
    public static Gen<ChainCase> Valid(TapRegistry registry, int maxInterposers = 3, bool allowFailures = false)
    {
        var interposers = Usable(registry, terminator: false);
        var terminators = Usable(registry, terminator: true);
        if (terminators.Count == 0) throw new ArgumentException("the registry has no terminator usable without outside resources", nameof(registry));
        var interposer = interposers.Count == 0 ? null : Gen.Elements(interposers.ToArray()).SelectMany(f => SpecOf(f, allowFailures));
        var terminator = Gen.Elements(terminators.ToArray()).SelectMany(f => SpecOf(f, allowFailures));
        return
            from n in Gen.Choose(0, interposer == null ? 0 : maxInterposers)
            from front in n == 0 ? Gen.Constant(Array.Empty<string>()) : interposer!.ArrayOf(n)
            from last in terminator
            select new ChainCase([.. front, last], null);
    }

    /// <summary>Invalid chains, each with one problem and the message fragment that names it.</summary>
    public static Gen<ChainCase> Invalid(TapRegistry registry)
    {
        var valid = Valid(registry, 2);
        var interposers = Usable(registry, terminator: false);
        return Gen.OneOf(
            // An unknown tap name anywhere.
            from c in valid
            from at in Gen.Choose(0, c.Specs.Count - 1)
            from name in Gen.Elements("nosuch", "Mem", "imgx", "dump2", "tap")
            select new ChainCase(Replace(c.Specs, at, name + ":size=1M"), $"unknown tap '{name}'"),
            // An unknown option on the terminator.
            from c in valid
            from key in Gen.Elements("bogus", "Size", "path2", "x")
            select new ChainCase(Replace(c.Specs, c.Specs.Count - 1, c.Specs[^1] + (c.Specs[^1].Contains(':') ? "," : ":") + key + "=1"), $"unknown option '{key}'"),
            // The terminator is not last.
            from c in valid
            select new ChainCase([c.Specs[^1], .. c.Specs], "must be the last --tap"),
            // The chain ends with an interposer.
            from c in valid
            from extra in interposers.Count == 0 ? Gen.Constant("dump") : Gen.Elements(interposers.Select(f => f.Name).ToArray())
            select new ChainCase([.. c.Specs.Take(c.Specs.Count - 1), extra], "passes requests on"),
            // Bad option values.
            Gen.Elements(
                new ChainCase(["error:rate=2", "mem"], "must be between 0 and 1"),
                new ChainCase(["error:rate=abc", "mem"], "is not a number"),
                new ChainCase(["mem:size=lots"], "is not a size"),
                new ChainCase(["mem:size=100"], "must be a positive multiple of 512"),
                new ChainCase(["mem:shared=maybe"], "is not true or false"),
                new ChainCase(["error:status=ok", "mem"], "is not 'error' or 'eopnotsupp'"),
                new ChainCase(["mem:size"], "is not key=value"),
                new ChainCase(["mem:size=1M,size=2M"], "given twice"),
                new ChainCase(["mem:"], "nothing after ':'"),
                new ChainCase([":size=1M"], "missing tap name"),
                new ChainCase(["img:path=/nonexistent/blktap-fuzz.raw"], "does not exist"),
                new ChainCase(["crypt", "mem"], "missing option 'keyfile=...'"),
                new ChainCase(["nbd"], "missing option 'uri=...'"),
                new ChainCase(["watch", "mem"], "nothing to watch"),
                new ChainCase(["watch:sectors=9-3", "mem"], "END is before START"),
                new ChainCase([], "no --tap given")));
    }

    /// <summary>Valid and invalid chains, about half each.</summary>
    public static Gen<ChainCase> Any(TapRegistry registry) => Gen.OneOf(Valid(registry), Invalid(registry));

    private static string[] Replace(IReadOnlyList<string> specs, int at, string with)
    {
        var a = specs.ToArray();
        a[at] = with;
        return a;
    }
}
