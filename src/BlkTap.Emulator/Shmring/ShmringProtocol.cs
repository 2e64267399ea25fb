using System.Globalization;

namespace BlkTap.Emulator;

/// <summary>
/// The shmring wire contract (docs/shmring.md): the socket's name inside the served directory, the
/// handshake grammar and the tap's answer. A frontend in any language speaks it with Xen's own ring
/// macros on page 0 of the memory the answer's descriptor names (SCM_RIGHTS) and one byte per event on
/// <c>DIR/evtchn</c>.
/// </summary>
/// <remarks>Threading: stateless; every member is safe from any thread.</remarks>
public static class ShmringProtocol
{
    /// <summary>The Unix stream socket the tap listens on (the event channel and the handshake).</summary>
    public const string EventChannelFileName = "evtchn";

    /// <summary>The page size of the shared memory (Xen's 4096-byte page).</summary>
    public const int PageSize = BlkifConstants.PageSize;

    /// <summary>The longest handshake line accepted, newline included.</summary>
    public const int MaxHandshakeBytes = 64;

    /// <summary>The most grant pages a frontend may declare (N): 262144 pages, 1 GiB of data pages.</summary>
    public const uint MaxGrantPages = 1u << 18;

    /// <summary>
    /// Parses a handshake line <c>blkif PROTOCOL N</c> (without its newline): exactly one space between
    /// fields, PROTOCOL <c>x86_64-abi</c> or <c>x86_32-abi</c>, N decimal without sign or leading zero,
    /// 1 ≤ N ≤ <see cref="MaxGrantPages"/>. Returns null on success, otherwise why the line is refused.
    /// </summary>
    public static string? TryParseHandshake(ReadOnlySpan<byte> line, out BlkifProtocol protocol, out uint grantPages)
    {
        protocol = default;
        grantPages = 0;
        const string grammar = "expected 'blkif x86_64-abi|x86_32-abi N'";
        foreach (var b in line)
            if (b < 0x20 || b > 0x7e) return $"the handshake line holds byte 0x{b:x2}; {grammar}";
        var text = System.Text.Encoding.ASCII.GetString(line);
        var parts = text.Split(' ');
        if (parts.Length != 3 || parts[0] != "blkif") return $"handshake '{Printable(text)}': {grammar}";
        // NOTE: the protocol names are xenstore's 'protocol' values (blkif.h XEN_IO_PROTO_ABI_X86_64 / _X86_32).
        if (parts[1].Length == 0 || !BlkifProtocolNames.TryParse(parts[1], out protocol))
            return $"handshake '{Printable(text)}': unknown protocol '{Printable(parts[1])}' (known: {BlkifProtocolNames.X86_64}, {BlkifProtocolNames.X86_32})";
        var n = parts[2];
        if (n.Length == 0 || n.Length > 7 || n[0] == '0' || !n.All(char.IsAsciiDigit)
            || !uint.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out grantPages) || grantPages > MaxGrantPages)
        {
            grantPages = 0;
            return $"handshake '{Printable(text)}': N '{Printable(n)}' is not a page count from 1 to {MaxGrantPages}";
        }
        return null;
    }

    /// <summary>The tap's answer: <c>connected SECTORS SECTOR_SIZE INFO\n</c>, decimal (INFO as in xenstore, read-only = 4).</summary>
    public static string FormatConnected(ulong sectors, uint sectorSize, VdiskInfo info) =>
        string.Create(CultureInfo.InvariantCulture, $"connected {sectors} {sectorSize} {(uint)info}\n");

    private static string Printable(string s) => s.Length > 40 ? s[..40] + "..." : s;
}
