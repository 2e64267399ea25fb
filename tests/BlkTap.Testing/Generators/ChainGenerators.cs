using BlkTap.Chains;
using FsCheck;
using FsCheck.Fluent;

namespace BlkTap.Testing.Generators;

/// <summary>
/// A chain of <c>--tap</c> specs (frontend side first) and what <see cref="TapRegistry.Build"/> must say
/// about it: <see cref="ExpectedError"/> null for a valid chain, otherwise a fragment of the
/// <see cref="ChainSpecException"/> message naming the problem.
/// </summary>
/// <remarks>
/// A spec may name files in a per-case scratch directory as <see cref="DirToken"/> (<c>img:path={dir}/img0.raw</c>),
/// and <see cref="Resources"/> says what must exist there first (images, key files, NBD exports):
/// <see cref="ChainResources.Create"/> makes them and gives the specs with the directory filled in.
/// </remarks>
/// <param name="Specs">The spec texts, as given to <c>--tap</c>.</param>
/// <param name="ExpectedError">Null, or text the error message must contain.</param>
public sealed record ChainCase(IReadOnlyList<string> Specs, string? ExpectedError)
{
    /// <summary>Stands for the case's scratch directory in <see cref="Specs"/>.</summary>
    public const string DirToken = "{dir}";

    /// <summary>What must exist in the scratch directory before the chain is built (empty: nothing).</summary>
    public IReadOnlyList<ChainResource> Resources { get; init; } = [];

    /// <summary>Whether the chain is valid.</summary>
    public bool IsValid => ExpectedError == null;

    /// <summary>Whether a spec names the scratch directory (then build it from <see cref="ChainResources.Create"/>'s specs).</summary>
    public bool NeedsScratch => Specs.Any(s => s.Contains(DirToken, StringComparison.Ordinal));

    /// <summary>
    /// Whether a tap of the chain completes requests from another thread (aio's I/O, delay's timer, nbd's socket, vbd's
    /// event channel), so
    /// the chain cannot run on the emulator's deterministic single-thread scheduler.
    /// </summary>
    public bool NeedsThreads => Specs.Any(s => TapName(s) is "aio" or "delay" or "nbd" or "vbd");

    /// <summary>The tap names, in chain order.</summary>
    public IEnumerable<string> TapNames => Specs.Select(TapName);

    /// <summary>The tap name of one spec text.</summary>
    public static string TapName(string spec)
    {
        int colon = spec.IndexOf(':');
        return colon < 0 ? spec : spec[..colon];
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{string.Join(" ", Specs.Select(s => "--tap " + s))}{(ExpectedError == null ? " (valid)" : $" (error: {ExpectedError})")}"
        + (Resources.Count == 0 ? "" : " with " + string.Join(", ", Resources));
}

/// <summary>A file or service a generated chain needs in its scratch directory (<see cref="ChainCase.DirToken"/>).</summary>
/// <param name="Name">File name inside the scratch directory.</param>
public abstract record ChainResource(string Name);

/// <summary>An image file of <paramref name="Bytes"/> bytes: sparse (reads as zeros) or random bytes from <paramref name="ContentSeed"/>.</summary>
public sealed record ImageFileResource(string Name, long Bytes, int? ContentSeed) : ChainResource(Name)
{
    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Bytes >> 10} KiB image, {(ContentSeed == null ? "sparse" : $"random content seed {ContentSeed}")}";
}

/// <summary>An empty qcow2 image (<c>blktap qcow2 create</c>) of <paramref name="Bytes"/> bytes with <paramref name="ClusterSize"/>-byte clusters, over the raw image <paramref name="Backing"/> (a resource listed before it) or none.</summary>
public sealed record Qcow2ImageResource(string Name, long Bytes, int ClusterSize, string? Backing) : ChainResource(Name)
{
    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Bytes >> 10} KiB qcow2 image, {ClusterSize}-byte clusters{(Backing != null ? $", backing {Backing}" : "")}";
}

/// <summary>An XTS key file of <paramref name="Bytes"/> (32 or 64) random bytes from <paramref name="Seed"/>, halves different.</summary>
public sealed record KeyFileResource(string Name, int Bytes, int Seed) : ChainResource(Name)
{
    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Bytes}-byte key seed {Seed}";
}

/// <summary>
/// An in-process NBD server (the project's own <c>NbdServer</c> over a memory export of <paramref name="Bytes"/>
/// zero bytes) listening on the Unix socket <see cref="ChainResource.Name"/>.
/// </summary>
public sealed record NbdExportResource(string Name, long Bytes, bool ReadOnly) : ChainResource(Name)
{
    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Bytes >> 10} KiB NBD memory export{(ReadOnly ? ", read-only" : "")}";
}

/// <summary>
/// A vbd of dom0 that another backend serves (an <see cref="EmulatedLowerVbd"/>: blkback over a zeroed memory disk of
/// <paramref name="Bytes"/> bytes, read-only with <paramref name="ReadOnly"/>), for a <c>vbd:dev=</c> tap to connect to.
/// <see cref="ChainResource.Name"/> is the device's name (<c>xvdb</c>), not a file.
/// </summary>
public sealed record LowerVbdResource(string Name, long Bytes, bool ReadOnly) : ChainResource(Name)
{
    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Bytes >> 10} KiB vbd served by blkback{(ReadOnly ? ", read-only" : "")}";
}

/// <summary>
/// FsCheck 3 generators of tap chains from a <see cref="TapRegistry"/>: valid chains (interposers, then
/// exactly one terminator, each with valid options) and invalid ones with the error the registry must
/// report. Every built-in tap takes part (<see cref="Excluded"/> is empty): the ones needing a
/// file, a key, a server or a vbd get it through <see cref="ChainCase.Resources"/> (build them with
/// <see cref="ChainResources"/>); taps of other registries with no required option (plugins) are used bare.
/// </summary>
/// <remarks>
/// Valid chains run in the emulator and must pass a verified workload: the error tap always has
/// <c>rate=0</c> unless <c>allowFailures</c>; delays are a few milliseconds; a terminator is read-only
/// only under a <c>cow</c> that makes the disk writable. Thread-safe: generators are immutable values.
/// </remarks>
public static class ChainGenerators
{
    private static readonly Gen<string> Ops = Gen.Elements("read", "write", "flush", "discard", "read+write", "write+flush", "read+write+flush+discard");

    /// <summary>
    /// Built-in taps generated chains leave out, and why: none today (vbd, the last, gets an <see cref="EmulatedLowerVbd"/>
    /// through <see cref="LowerVbdResource"/>). A tap added here must say why it cannot take part.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Excluded { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Valid option strings for the built-in taps that need no file, key or server.</summary>
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
        // A few milliseconds at most: generated runs stay fast; ms=0 and min=0 pass some requests undelayed.
        "delay" =>
            from delay in Gen.Elements("ms=0", "ms=1", "ms=2", "min=0,max=2", "min=1,max=3")
            from ops in Gen.Elements("", ",ops=read+write", ",ops=write", ",ops=read+write+flush+discard")
            from seed in Gen.Elements("", ",seed=7", ",seed=123456")
            select $"delay:{delay}{ops}{seed}",
        _ => null,
    };

    /// <summary>A generated spec and the resources it needs.</summary>
    private sealed record Part(string Spec, ChainResource[] Resources);

    /// <summary>
    /// Specs of tap <paramref name="tap"/> at chain position <paramref name="index"/> (resource names carry it, so they are
    /// unique in a chain); <paramref name="readOnly"/> asks a terminator for its read-only form. Null: not a tap known here.
    /// </summary>
    private static Gen<Part>? PartFor(string tap, int index, bool allowFailures, bool readOnly)
    {
        string dir = ChainCase.DirToken;
        string ro = readOnly ? ",readonly=true" : "";
        switch (tap)
        {
            case "img":
            case "aio":
                return
                    from kib in Gen.Elements(512, 1024, 4096)
                    from random in Gen.Elements(false, true)
                    from seed in Gen.Choose(1, 1_000_000)
                    from depth in tap == "aio" ? Gen.Elements("", ",depth=1", ",depth=4", ",depth=64") : Gen.Constant("")
                    let name = $"{tap}{index}.raw"
                    select new Part($"{tap}:path={dir}/{name}{depth}{ro}", [new ImageFileResource(name, kib * 1024L, random ? seed : null)]);
            case "qcow2":
                return
                    from kib in Gen.Elements(512, 1024, 4096)
                    from cluster in Gen.Elements(512, 4096, 65536, 2 << 20)
                    from backed in Gen.Elements(false, true)
                    from seed in Gen.Choose(1, 1_000_000)
                    let name = $"qcow2{index}.qcow2"
                    let baseName = $"qcow2{index}-base.raw"
                    select new Part($"qcow2:path={dir}/{name}{ro}", backed
                        ? [new ImageFileResource(baseName, kib * 1024L, seed), new Qcow2ImageResource(name, kib * 1024L, cluster, baseName)]
                        : [new Qcow2ImageResource(name, kib * 1024L, cluster, null)]);
            case "nbd":
                return
                    from kib in Gen.Elements(512, 1024, 4096)
                    from timeout in Gen.Elements("", ",timeout=30")
                    let name = $"nbd{index}.sock"
                    select new Part($"nbd:uri=nbd+unix:///?socket={dir}/{name}{timeout}", [new NbdExportResource(name, kib * 1024L, readOnly)]);
            case "vbd":
                // One terminator per chain, so one lower vbd (xvdb) per case.
                return
                    from kib in Gen.Elements(512, 1024, 4096)
                    from depth in Gen.Elements("", ",depth=1", ",depth=8")
                    from order in Gen.Elements("", ",ring-order=0", ",ring-order=2")
                    select new Part($"vbd:dev=xvdb{depth}{order}", [new LowerVbdResource("xvdb", kib * 1024L, readOnly)]);
            case "mem":
                return OptionsFor("mem")!.Select(s => new Part(s + ro, []));
            case "cow":
                return
                    from cluster in Gen.Elements("", ",cluster=4K", ",cluster=64K")
                    from roBase in Gen.Elements("", ",readonly-base=true", ",readonly-base=false")
                    select new Part($"cow:overlay={dir}/cow{index}.ovl{cluster}{roBase}", []);
            case "crypt":
                return
                    from bytes in Gen.Elements(32, 64)
                    from seed in Gen.Choose(1, 1_000_000)
                    from discard in Gen.Elements("", ",discard=false", ",discard=true")
                    let name = $"key{index}"
                    select new Part($"crypt:keyfile={dir}/{name}{discard}", [new KeyFileResource(name, bytes, seed)]);
            case "dump":
                return Gen.OneOf(
                    Gen.Constant(new Part("dump:quiet=true", [])),
                    Gen.Constant(new Part($"dump:file={dir}/dump{index}.txt", [])),
                    Gen.Constant(new Part($"dump:file={dir}/dump{index}.txt,quiet=false", [])));
            default:
                return OptionsFor(tap, allowFailures)?.Select(s => new Part(s, []));
        }
    }

    private static bool Known(string tap) => PartFor(tap, 0, false, false) != null;

    private static List<ITapFactory> Usable(TapRegistry registry, bool terminator) =>
        registry.Factories
            .Where(f => f.IsTerminator == terminator && !Excluded.ContainsKey(f.Name) && (Known(f.Name) || f.Options.All(o => !o.Required)))
            .OrderBy(f => f.Name, StringComparer.Ordinal).ToList();

    /// <summary>The taps of <paramref name="registry"/> that generated chains use, by name.</summary>
    public static IReadOnlyList<string> Covered(TapRegistry registry) =>
        [.. Usable(registry, terminator: false).Select(f => f.Name), .. Usable(registry, terminator: true).Select(f => f.Name)];

    private static Gen<Part> PartOf(ITapFactory f, int index, bool allowFailures, bool readOnly) =>
        PartFor(f.Name, index, allowFailures, readOnly) ?? Gen.Constant(new Part(f.Name, []));

    /// <summary>
    /// Valid chains: 0..<paramref name="maxInterposers"/> interposers then one terminator. With <paramref name="including"/>,
    /// every chain has that tap (as its terminator or one of its interposers).
    /// </summary>
    /// <exception cref="ArgumentException">The registry has no usable terminator, or <paramref name="including"/> is not a usable tap.</exception>
    public static Gen<ChainCase> Valid(TapRegistry registry, int maxInterposers = 3, bool allowFailures = false, string? including = null)
    {
        var interposers = Usable(registry, terminator: false);
        var terminators = Usable(registry, terminator: true);
        if (terminators.Count == 0) throw new ArgumentException("the registry has no terminator usable in generated chains", nameof(registry));
        var forced = including == null ? null
            : interposers.Concat(terminators).FirstOrDefault(f => f.Name == including)
              ?? throw new ArgumentException($"'{including}' is not a tap generated chains use (they use: {string.Join(", ", Covered(registry))})", nameof(including));
        bool forcedInterposer = forced is { IsTerminator: false };
        var interposerChoice = interposers.Count == 0 ? null : Gen.Elements(interposers.ToArray());
        var terminatorChoice = forced is { IsTerminator: true } ? Gen.Constant(forced) : Gen.Elements(terminators.ToArray());
        int min = forcedInterposer ? 1 : 0;
        int max = interposerChoice == null ? 0 : Math.Max(min, maxInterposers);
        return
            from n in Gen.Choose(min, max)
            from picked in n == 0 ? Gen.Constant(Array.Empty<ITapFactory>()) : interposerChoice!.ArrayOf(n)
            from at in Gen.Choose(0, Math.Max(0, n - 1))
            let kinds = forcedInterposer ? picked.Select((f, i) => i == at ? forced! : f).ToArray() : picked
            from front in Sequence(kinds.Select((f, i) => PartOf(f, i, allowFailures, readOnly: false)))
            // A cow makes the disk writable over a read-only base (readonly-base defaults to true): then the base may be read-only.
            let cows = front.Where(p => ChainCase.TapName(p.Spec) == "cow").ToList()
            let readOnlyAllowed = cows.Count > 0 && cows.All(p => !p.Spec.Contains("readonly-base=false", StringComparison.Ordinal))
            from readOnly in readOnlyAllowed ? Gen.Elements(false, true) : Gen.Constant(false)
            from terminator in terminatorChoice
            from last in PartOf(terminator, n, allowFailures, readOnly && terminator.Name is "img" or "aio" or "mem" or "nbd")
            select new ChainCase([.. front.Select(p => p.Spec), last.Spec], null)
            {
                Resources = [.. front.SelectMany(p => p.Resources), .. last.Resources],
            };
    }

    private static Gen<Part[]> Sequence(IEnumerable<Gen<Part>> gens) =>
        gens.Aggregate(Gen.Constant(Array.Empty<Part>()), (acc, g) => from a in acc from p in g select (Part[])[.. a, p]);

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
            select c with { Specs = Replace(c.Specs, at, name + ":size=1M"), ExpectedError = $"unknown tap '{name}'" },
            // An unknown option on the terminator.
            from c in valid
            from key in Gen.Elements("bogus", "Size", "path2", "x")
            select c with { Specs = Replace(c.Specs, c.Specs.Count - 1, c.Specs[^1] + (c.Specs[^1].Contains(':') ? "," : ":") + key + "=1"), ExpectedError = $"unknown option '{key}'" },
            // The terminator is not last.
            from c in valid
            select c with { Specs = [c.Specs[^1], .. c.Specs], ExpectedError = "must be the last --tap" },
            // The chain ends with an interposer.
            from c in valid
            from extra in interposers.Count == 0 ? Gen.Constant(new Part("dump", [])) : Gen.Elements(interposers.ToArray()).SelectMany(f => PartOf(f, c.Specs.Count, false, false))
            select c with
            {
                Specs = [.. c.Specs.Take(c.Specs.Count - 1), extra.Spec], Resources = [.. c.Resources, .. extra.Resources], ExpectedError = "passes requests on",
            },
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
                new ChainCase(["delay", "mem"], "missing the delay"),
                new ChainCase(["delay:ms=1,min=0,max=2", "mem"], "not both"),
                new ChainCase(["cow", "mem"], "missing option 'overlay=...'"),
                new ChainCase(["cow:overlay=/nonexistent/dir/o.cow", "mem"], "does not exist"),
                new ChainCase(["crypt:keyfile=/nonexistent/blktap.key", "mem"], "cannot read key file"),
                new ChainCase(["aio:path=/nonexistent/blktap-fuzz.raw"], "does not exist"),
                new ChainCase(["nbd:uri=http://example.com/"], "uri="),
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
