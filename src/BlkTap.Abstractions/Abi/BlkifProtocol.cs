namespace BlkTap;

/// <summary>The ring ABI a frontend speaks, as its xenstore <c>protocol</c> node names it.</summary>
/// <remarks>
/// NOTE: names from xen/include/public/io/protocols.h (XEN_IO_PROTO_ABI_X86_32 "x86_32-abi",
/// XEN_IO_PROTO_ABI_X86_64 "x86_64-abi"). A missing node means the backend's native ABI.
/// </remarks>
public enum BlkifProtocol
{
    /// <summary>x86_64-abi: 112-byte requests, 16-byte responses.</summary>
    X86_64 = 0,
    /// <summary>x86_32-abi: 108-byte requests (64-bit fields aligned to 4), 12-byte responses.</summary>
    X86_32 = 1,
}

/// <summary>Conversions between <see cref="BlkifProtocol"/> and its xenstore names. Thread-safe.</summary>
public static class BlkifProtocolNames
{
    /// <summary>The xenstore name of the 64-bit ABI.</summary>
    public const string X86_64 = "x86_64-abi";
    /// <summary>The xenstore name of the 32-bit ABI.</summary>
    public const string X86_32 = "x86_32-abi";

    /// <summary>Parses a xenstore <c>protocol</c> value; null or empty means the native 64-bit ABI.</summary>
    public static bool TryParse(string? value, out BlkifProtocol protocol)
    {
        switch (value)
        {
            case null or "" or X86_64: protocol = BlkifProtocol.X86_64; return true;
            case X86_32: protocol = BlkifProtocol.X86_32; return true;
            default: protocol = default; return false;
        }
    }

    /// <summary>The xenstore name of <paramref name="protocol"/>.</summary>
    public static string ToName(this BlkifProtocol protocol) => protocol == BlkifProtocol.X86_32 ? X86_32 : X86_64;
}
