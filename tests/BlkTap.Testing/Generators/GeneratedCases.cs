namespace BlkTap.Testing.Generators;

/// <summary>
/// A request whose every field fits its form's wire field (any operation byte, segment counts 0..255
/// for the segment form, 0..65535 for the indirect form), so encoding then decoding it must give back
/// every field the form carries. Not necessarily valid.
/// </summary>
/// <param name="Protocol">The ABI to encode it with.</param>
/// <param name="Request">The request.</param>
public sealed record EncodableRequest(BlkifProtocol Protocol, BlkifRequest Request)
{
    /// <summary>The layout of <see cref="Protocol"/>.</summary>
    public BlkifLayout Layout => BlkifLayout.For(Protocol);

    /// <inheritdoc />
    public override string ToString() => $"{Protocol}: {BlkifRequestText.Describe(Request)}";
}

/// <summary>
/// A request together with the disk it is sent to and the verdict the protocol's rules give:
/// <see cref="Expected"/> is <see cref="RequestFault.None"/> for a valid request, otherwise the one
/// fault the generator injected (every other field is kept valid so the verdict is unambiguous).
/// </summary>
/// <param name="Request">The request.</param>
/// <param name="DiskSectors">Disk size in 512-byte sectors.</param>
/// <param name="ReadOnly">Whether the disk is read-only.</param>
/// <param name="MaxIndirectSegments">Segments an indirect request may carry (0: indirect not offered).</param>
/// <param name="Expected">The fault <see cref="BlkifValidation.Validate"/> must report.</param>
/// <param name="Why">What the generator did, for counterexamples.</param>
public sealed record RequestCase(BlkifRequest Request, ulong DiskSectors, bool ReadOnly, int MaxIndirectSegments,
    RequestFault Expected, string Why)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Why}: {BlkifRequestText.Describe(Request)} disk={DiskSectors}{(ReadOnly ? " ro" : "")} maxIndirect={MaxIndirectSegments} expected={Expected}";
}

/// <summary>A <see cref="RequestCase"/> that is valid (<see cref="RequestCase.Expected"/> is None).</summary>
/// <param name="Case">The case.</param>
public sealed record ValidRequest(RequestCase Case)
{
    /// <inheritdoc />
    public override string ToString() => Case.ToString();
}

/// <summary>A <see cref="RequestCase"/> with exactly one injected fault.</summary>
/// <param name="Case">The case.</param>
public sealed record MalformedRequest(RequestCase Case)
{
    /// <inheritdoc />
    public override string ToString() => Case.ToString();
}

/// <summary>The raw bytes of one request slot (exactly <c>RequestSize</c> bytes of the ABI), any content.</summary>
/// <param name="Protocol">The ABI.</param>
/// <param name="Bytes">The slot content.</param>
public sealed record RingSlot(BlkifProtocol Protocol, byte[] Bytes)
{
    /// <summary>The layout of <see cref="Protocol"/>.</summary>
    public BlkifLayout Layout => BlkifLayout.For(Protocol);

    /// <inheritdoc />
    public override string ToString() => $"{Protocol}: {Convert.ToHexString(Bytes)}";
}

/// <summary>
/// A shared ring's geometry and the index both ends start from (FRONT/BACK_RING_ATTACH). Start
/// indices are mostly just below 2^32 so a test's traffic wraps the 32-bit indices.
/// </summary>
/// <param name="Protocol">The ABI (fixes the entry size).</param>
/// <param name="PageOrder">ring-page-order, 0..3.</param>
/// <param name="StartIndex">The value of every ring index at the start.</param>
public sealed record RingGeometry(BlkifProtocol Protocol, int PageOrder, uint StartIndex)
{
    /// <summary>The layout of <see cref="Protocol"/>.</summary>
    public BlkifLayout Layout => BlkifLayout.For(Protocol);

    /// <summary>Bytes of the ring (4096 &lt;&lt; order).</summary>
    public int Bytes => SharedRingLayout.BytesForOrder(PageOrder);

    /// <summary>Entries in the ring.</summary>
    public uint EntryCount => SharedRingLayout.EntryCount(Bytes, Layout.RingEntrySize);

    /// <inheritdoc />
    public override string ToString() => $"{Protocol} order={PageOrder} start=0x{StartIndex:x8}";
}
