using System.Buffers.Binary;
using System.Text;
using BlkTap.Nbd;
using FsCheck;
using FsCheck.Fluent;

namespace BlkTap.Testing.Generators;

/// <summary>
/// The 28 bytes (or fewer) a client sends as a transmission request header, and what
/// <see cref="NbdRequestHeader.TryRead"/> must make of them: <see cref="Header"/> when they decode,
/// else <see cref="ExpectedError"/> (a fragment of the error text).
/// </summary>
/// <param name="Bytes">The bytes on the wire.</param>
/// <param name="Header">The header they encode, or null for a malformed one.</param>
/// <param name="ExpectedError">Null, or text the decoder's error must contain.</param>
public sealed record NbdHeaderCase(byte[] Bytes, NbdRequestHeader? Header, string? ExpectedError)
{
    /// <inheritdoc />
    public override string ToString() => $"{Convert.ToHexString(Bytes)} => {(Header?.ToString() ?? "error: " + ExpectedError)}";
}

/// <summary>What the server must do with one option of a handshake script.</summary>
/// <param name="Option">The option code sent.</param>
/// <param name="Replies">The option reply types expected, in order (empty when the server disconnects instead).</param>
public sealed record NbdOptionExpectation(uint Option, IReadOnlyList<NbdOptionReplyType> Replies);

/// <summary>
/// The bytes an NBD client sends from the greeting on (client flags, then options), and what a server
/// offering one export named <see cref="NbdGenerators.ExportName"/> must answer: for each option, the
/// reply types; then either transmission (<see cref="EntersTransmission"/>) or a disconnect.
/// NOTE: the expectations follow proto.md "Option haggling" for a fixed-newstyle server that supports
/// EXPORT_NAME, ABORT, LIST, INFO, GO and answers NBD_REP_ERR_UNSUP to the rest.
/// </summary>
/// <param name="ClientBytes">Everything the client writes.</param>
/// <param name="Options">Per option sent (and answered), the expected replies.</param>
/// <param name="EntersTransmission">Whether the handshake ends in transmission.</param>
/// <param name="Why">What the generator did.</param>
public sealed record NbdHandshakeScript(byte[] ClientBytes, IReadOnlyList<NbdOptionExpectation> Options, bool EntersTransmission, string Why)
{
    /// <inheritdoc />
    public override string ToString() => $"{Why}: {Convert.ToHexString(ClientBytes.AsSpan(0, Math.Min(ClientBytes.Length, 96)))}{(ClientBytes.Length > 96 ? "..." : "")}";
}

/// <summary>
/// FsCheck 3 generators for the NBD wire protocol as a server sees it: transmission request headers
/// (valid, truncated, bad magic, unknown commands and flags, edge offsets and lengths) and option
/// haggling byte streams (valid sequences, unknown options, malformed INFO/GO data, unknown client
/// flags, bad option magic, oversized options, truncation). Built on <see cref="NbdMagic"/> and
/// <see cref="NbdRequestHeader"/>. Thread-safe: generators are immutable values.
/// </summary>
public static class NbdGenerators
{
    /// <summary>The export name the scripts' server must offer.</summary>
    public const string ExportName = "fuzz";

    private static readonly Gen<ulong> Edgy = BlkifGenerators.UInt64Edgy;

    /// <summary>Any header with the right magic (commands and flags may be unknown values).</summary>
    public static Gen<NbdRequestHeader> Header { get; } =
        from flags in Gen.Frequency((4, Gen.Elements(NbdCommandFlags.None, NbdCommandFlags.Fua, NbdCommandFlags.NoHole)), (1, Gen.Choose(0, 0xFFFF).Select(f => (NbdCommandFlags)f)))
        from cmd in Gen.Frequency((6, Gen.Choose(0, 7).Select(c => (NbdCommand)c)), (1, Gen.Choose(8, 0xFFFF).Select(c => (NbdCommand)c)))
        from cookie in BlkifGenerators.UInt64Uniform
        from offset in Edgy
        from length in Gen.Frequency((4, Gen.Choose(0, 1 << 20).Select(l => (uint)l)), (1, BlkifGenerators.UInt32Uniform))
        select new NbdRequestHeader(flags, cmd, cookie, offset, length);

    /// <summary>Valid headers, truncated ones and ones with a bad magic.</summary>
    public static Gen<NbdHeaderCase> HeaderCase { get; } = Gen.OneOf(
        Header.Select(h => { var b = new byte[NbdMagic.RequestHeaderSize]; h.Write(b); return new NbdHeaderCase(b, h, null); }),
        from h in Header
        from cut in Gen.Choose(0, NbdMagic.RequestHeaderSize - 1)
        select Truncated(h, cut),
        from h in Header
        from magic in BlkifGenerators.UInt32Uniform.Where(m => m != NbdMagic.Request)
        select BadMagic(h, magic));

    private static NbdHeaderCase Truncated(NbdRequestHeader h, int cut)
    {
        var b = new byte[NbdMagic.RequestHeaderSize];
        h.Write(b);
        return new NbdHeaderCase(b[..cut], null, "truncated");
    }

    private static NbdHeaderCase BadMagic(NbdRequestHeader h, uint magic)
    {
        var b = new byte[NbdMagic.RequestHeaderSize];
        h.Write(b);
        BinaryPrimitives.WriteUInt32BigEndian(b, magic);
        return new NbdHeaderCase(b, null, "bad NBD request magic");
    }

    /// <summary>One option request: IHAVEOPT, option, length, data.</summary>
    public static byte[] Option(uint option, ReadOnlySpan<byte> data)
    {
        var b = new byte[NbdMagic.OptionHeaderSize + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(b, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), (uint)data.Length);
        data.CopyTo(b.AsSpan(16));
        return b;
    }

    /// <summary>INFO/GO option data: name length, name, request count, requests.</summary>
    public static byte[] InfoData(string name, params NbdInfoType[] requests)
    {
        var n = Encoding.UTF8.GetBytes(name);
        var b = new byte[4 + n.Length + 2 + 2 * requests.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)n.Length);
        n.CopyTo(b, 4);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4 + n.Length), (ushort)requests.Length);
        for (int i = 0; i < requests.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6 + n.Length + 2 * i), (ushort)requests[i]);
        return b;
    }

    private sealed record Step(byte[] Bytes, NbdOptionExpectation Expect, bool Ends, bool Transmission);

    private static readonly NbdOptionReplyType[] InfoReplies = [NbdOptionReplyType.Info, NbdOptionReplyType.Info, NbdOptionReplyType.Ack];

    /// <summary>An option that keeps negotiation going, with its replies.</summary>
    private static Gen<Step> ContinuingOption { get; } = Gen.OneOf(
        Gen.Constant(new Step(Option((uint)NbdOption.List, default), new((uint)NbdOption.List, [NbdOptionReplyType.Server, NbdOptionReplyType.Ack]), false, false)),
        Gen.Choose(1, 16).Select(n => new Step(Option((uint)NbdOption.List, new byte[n]), new((uint)NbdOption.List, [NbdOptionReplyType.ErrInvalid]), false, false)),
        Gen.Constant(new Step(Option((uint)NbdOption.Info, InfoData(ExportName)), new((uint)NbdOption.Info, InfoReplies), false, false)),
        Gen.Constant(new Step(Option((uint)NbdOption.Info, InfoData(ExportName, NbdInfoType.Name)),
            new((uint)NbdOption.Info, [NbdOptionReplyType.Info, NbdOptionReplyType.Info, NbdOptionReplyType.Info, NbdOptionReplyType.Ack]), false, false)),
        Gen.Elements("nope", "", "fuzz2", "FUZZ").Select(name => new Step(Option((uint)NbdOption.Info, InfoData(name)), new((uint)NbdOption.Info, [NbdOptionReplyType.ErrUnknown]), false, false)),
        Gen.Choose(0, 5).Select(n => new Step(Option((uint)NbdOption.Go, new byte[n]), new((uint)NbdOption.Go, [NbdOptionReplyType.ErrInvalid]), false, false)),
        // Name length larger than the data that follows.
        Gen.Choose(5, 5000).Select(len => { var d = InfoData(ExportName); BinaryPrimitives.WriteUInt32BigEndian(d, (uint)len); return new Step(Option((uint)NbdOption.Info, d), new((uint)NbdOption.Info, [NbdOptionReplyType.ErrInvalid]), false, false); }),
        // Request count that does not match the length.
        Gen.Choose(1, 100).Select(k => { var d = InfoData(ExportName); BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(d.Length - 2), (ushort)k); return new Step(Option((uint)NbdOption.Go, d), new((uint)NbdOption.Go, [NbdOptionReplyType.ErrInvalid]), false, false); }),
        // Options this server does not implement, and unknown codes.
        from code in Gen.Frequency((2, Gen.Elements<uint>(5, 8, 9, 10, 11)), (1, BlkifGenerators.UInt32Uniform.Where(c => c is 0 or > 11 )))
        from len in Gen.Choose(0, 64)
        select new Step(Option(code, new byte[len]), new(code, [NbdOptionReplyType.ErrUnsup]), false, false));

    /// <summary>How a script ends.</summary>
    private static Gen<Step> FinalStep { get; } = Gen.OneOf(
        Gen.Constant(new Step(Option((uint)NbdOption.Go, InfoData(ExportName)), new((uint)NbdOption.Go, InfoReplies), true, true)),
        Gen.Constant(new Step(Option((uint)NbdOption.ExportName, Encoding.UTF8.GetBytes(ExportName)), new((uint)NbdOption.ExportName, []), true, true)),
        Gen.Constant(new Step(Option((uint)NbdOption.Abort, default), new((uint)NbdOption.Abort, [NbdOptionReplyType.Ack]), true, false)),
        // EXPORT_NAME of an unknown export: the only answer is a disconnect.
        Gen.Constant(new Step(Option((uint)NbdOption.ExportName, "nope"u8), new((uint)NbdOption.ExportName, []), true, false)),
        // A bad option magic, or an option longer than the server accepts: disconnect, no reply.
        BlkifGenerators.UInt64Uniform.Where(m => m != NbdMagic.IHaveOpt).Select(m =>
        {
            var b = Option((uint)NbdOption.List, default);
            BinaryPrimitives.WriteUInt64BigEndian(b, m);
            return new Step(b, new((uint)NbdOption.List, []), true, false);
        }),
        Gen.Choose(64 * 1024 + 1, int.MaxValue).Select(len =>
        {
            var b = Option((uint)NbdOption.Go, default);
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), (uint)len);
            return new Step(b, new((uint)NbdOption.Go, []), true, false);
        }),
        // Truncated option header then EOF.
        Gen.Choose(1, NbdMagic.OptionHeaderSize - 1).Select(n => new Step(Option((uint)NbdOption.List, default)[..n], new((uint)NbdOption.List, []), true, false)));

    /// <summary>Option haggling scripts: client flags, 0..5 continuing options, and a final step.</summary>
    public static Gen<NbdHandshakeScript> Handshake { get; } = Gen.OneOf(
        from noZeroes in Gen.Elements(true, false)
        from n in Gen.Choose(0, 5)
        from middle in ContinuingOption.ArrayOf(n)
        from last in FinalStep
        select Build(NbdClientFlags.FixedNewstyle | (noZeroes ? NbdClientFlags.NoZeroes : 0), middle, last, "fixed newstyle"),
        // Unknown client flags: the server must drop the connection before any option.
        from bad in BlkifGenerators.UInt32Uniform.Where(f => (f & ~3u) != 0)
        from last in FinalStep
        select Build((NbdClientFlags)bad, [], last, $"unknown client flags 0x{bad:x8}", dropAll: true),
        // Not fixed newstyle: only EXPORT_NAME is allowed.
        from opt in ContinuingOption
        select Build(NbdClientFlags.None, [opt], opt, "non-fixed newstyle client sends another option", dropAll: true));

    private static NbdHandshakeScript Build(NbdClientFlags flags, Step[] middle, Step last, string why, bool dropAll = false)
    {
        var bytes = new List<byte>();
        var f = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(f, (uint)flags);
        bytes.AddRange(f);
        foreach (var s in middle) bytes.AddRange(s.Bytes);
        if (!ReferenceEquals(last, middle.LastOrDefault())) bytes.AddRange(last.Bytes);
        if (dropAll) return new NbdHandshakeScript([.. bytes], [], false, why);
        var expectations = middle.Select(s => s.Expect).Append(last.Expect).Where(e => e.Replies.Count > 0).ToList();
        return new NbdHandshakeScript([.. bytes], expectations, last.Transmission,
            $"{why}: {string.Join(", ", middle.Select(s => s.Expect.Option))} then {last.Expect.Option}{(last.Transmission ? " (transmission)" : "")}");
    }
}
