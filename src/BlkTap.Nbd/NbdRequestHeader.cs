using System.Buffers.Binary;

namespace BlkTap.Nbd;

/// <summary>
/// A transmission request header (28 bytes): magic u32, command flags u16, type u16, cookie u64,
/// offset u64, length u32, all big-endian. A WRITE header is followed by <see cref="Length"/> payload bytes.
/// NOTE: layout from proto.md "Request message" (the cookie was called "handle" in older revisions).
/// Immutable value; thread-safe.
/// </summary>
/// <param name="Flags">Command flags.</param>
/// <param name="Command">Request type (may be a value this enum does not name).</param>
/// <param name="Cookie">Opaque value echoed in the reply.</param>
/// <param name="Offset">Byte offset into the export.</param>
/// <param name="Length">Byte count.</param>
public readonly record struct NbdRequestHeader(NbdCommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    /// <summary>Writes the header (with <see cref="NbdMagic.Request"/>) into the first 28 bytes of <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentException">The destination is shorter than 28 bytes.</exception>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < NbdMagic.RequestHeaderSize)
            throw new ArgumentException($"an NBD request header needs {NbdMagic.RequestHeaderSize} bytes, got {destination.Length}", nameof(destination));
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.Request);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Command);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[24..], Length);
    }

    /// <summary>
    /// Decodes a header. Returns false (and sets <paramref name="error"/>) when the source is shorter than
    /// 28 bytes or the magic is wrong; unknown commands and flags are returned as-is for the caller to judge.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out NbdRequestHeader header, out string? error)
    {
        header = default;
        if (source.Length < NbdMagic.RequestHeaderSize)
        {
            error = $"truncated NBD request header: {source.Length} of {NbdMagic.RequestHeaderSize} bytes";
            return false;
        }
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(source);
        if (magic != NbdMagic.Request)
        {
            error = $"bad NBD request magic 0x{magic:x8} (expected 0x{NbdMagic.Request:x8})";
            return false;
        }
        header = new NbdRequestHeader(
            (NbdCommandFlags)BinaryPrimitives.ReadUInt16BigEndian(source[4..]),
            (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(source[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[24..]));
        error = null;
        return true;
    }
}

/// <summary>
/// A simple reply header (16 bytes): magic u32, error u32, cookie u64, big-endian; a successful READ reply
/// is followed by the requested bytes. NOTE: layout from proto.md "Simple reply message".
/// Immutable value; thread-safe.
/// </summary>
/// <param name="Error">NBD error value (0 = success).</param>
/// <param name="Cookie">The cookie of the request answered.</param>
public readonly record struct NbdSimpleReply(uint Error, ulong Cookie)
{
    /// <summary>Writes the reply header into the first 16 bytes of <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentException">The destination is shorter than 16 bytes.</exception>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < NbdMagic.SimpleReplyHeaderSize)
            throw new ArgumentException($"an NBD simple reply needs {NbdMagic.SimpleReplyHeaderSize} bytes, got {destination.Length}", nameof(destination));
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.SimpleReply);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], Error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Cookie);
    }

    /// <summary>Decodes a simple reply; false with an <paramref name="error"/> text when truncated or the magic is wrong.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out NbdSimpleReply reply, out string? error)
    {
        reply = default;
        if (source.Length < NbdMagic.SimpleReplyHeaderSize)
        {
            error = $"truncated NBD reply header: {source.Length} of {NbdMagic.SimpleReplyHeaderSize} bytes";
            return false;
        }
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(source);
        if (magic != NbdMagic.SimpleReply)
        {
            error = magic == NbdMagic.StructuredReply
                ? "server sent a structured reply, which was never negotiated"
                : $"bad NBD reply magic 0x{magic:x8} (expected 0x{NbdMagic.SimpleReply:x8})";
            return false;
        }
        reply = new NbdSimpleReply(BinaryPrimitives.ReadUInt32BigEndian(source[4..]), BinaryPrimitives.ReadUInt64BigEndian(source[8..]));
        error = null;
        return true;
    }
}
