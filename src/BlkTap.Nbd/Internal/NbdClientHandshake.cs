using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// Client side of the fixed newstyle handshake on a blocking socket: NBD_OPT_GO, falling back to
/// NBD_OPT_EXPORT_NAME when the server answers NBD_REP_ERR_UNSUP or lacks fixed newstyle. Not thread-safe.
/// </summary>
internal static class NbdClientHandshake
{
    // NOTE: proto.md says option replies carry at most a string or small fixed records; cap what we accept
    // so a garbage length cannot make us allocate gigabytes.
    private const int MaxOptionReply = 64 * 1024;

    public static NbdExportInfo Run(Socket socket, string exportName)
    {
        Span<byte> hdr = stackalloc byte[18];
        BlockingIo.ReadExact(socket, hdr, "the NBD greeting");
        ulong magic = BinaryPrimitives.ReadUInt64BigEndian(hdr);
        if (magic != NbdMagic.NbdMagicValue)
            throw new NbdProtocolException($"not an NBD server: greeting magic 0x{magic:x16} (expected 'NBDMAGIC')");
        ulong style = BinaryPrimitives.ReadUInt64BigEndian(hdr[8..]);
        if (style == NbdMagic.OldstyleMagic)
            throw new NbdProtocolException("server uses the oldstyle NBD handshake, which is not supported (no export names)");
        if (style != NbdMagic.IHaveOpt)
            throw new NbdProtocolException($"bad NBD greeting: second magic 0x{style:x16} (expected 'IHAVEOPT')");
        var serverFlags = (NbdHandshakeFlags)BinaryPrimitives.ReadUInt16BigEndian(hdr[16..]);

        bool fixedNewstyle = (serverFlags & NbdHandshakeFlags.FixedNewstyle) != 0;
        bool noZeroes = (serverFlags & NbdHandshakeFlags.NoZeroes) != 0;
        // NOTE: proto.md "Client flags": the client MUST NOT set a flag the server did not advertise.
        var clientFlags = (fixedNewstyle ? NbdClientFlags.FixedNewstyle : 0) | (noZeroes ? NbdClientFlags.NoZeroes : 0);
        Span<byte> cf = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(cf, (uint)clientFlags);
        BlockingIo.WriteAll(socket, cf);

        byte[] name = Encoding.UTF8.GetBytes(exportName);
        if (name.Length > NbdMagic.MaxString) throw new ArgumentException($"export name longer than {NbdMagic.MaxString} bytes", nameof(exportName));

        if (fixedNewstyle)
        {
            var info = TryGo(socket, exportName, name);
            if (info != null) return info;
        }
        return ExportName(socket, exportName, name, noZeroes);
    }

    private static NbdExportInfo? TryGo(Socket socket, string exportName, byte[] name)
    {
        // GO data: u32 name length, name, u16 number of info requests, u16 each (we ask for BLOCK_SIZE).
        int dataLen = 4 + name.Length + 2 + 2;
        byte[] msg = new byte[NbdMagic.OptionHeaderSize + dataLen];
        BinaryPrimitives.WriteUInt64BigEndian(msg, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(8), (uint)NbdOption.Go);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), (uint)dataLen);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(16), (uint)name.Length);
        name.CopyTo(msg.AsSpan(20));
        BinaryPrimitives.WriteUInt16BigEndian(msg.AsSpan(20 + name.Length), 1);
        BinaryPrimitives.WriteUInt16BigEndian(msg.AsSpan(22 + name.Length), (ushort)NbdInfoType.BlockSize);
        BlockingIo.WriteAll(socket, msg);

        ulong? size = null;
        var flags = NbdTransmissionFlags.None;
        uint min = 1, pref = 4096, max = NbdMagic.MaxPayload;
        Span<byte> rh = stackalloc byte[NbdMagic.OptionReplyHeaderSize];
        while (true)
        {
            BlockingIo.ReadExact(socket, rh, "an NBD_OPT_GO reply");
            ulong magic = BinaryPrimitives.ReadUInt64BigEndian(rh);
            uint option = BinaryPrimitives.ReadUInt32BigEndian(rh[8..]);
            var type = (NbdOptionReplyType)BinaryPrimitives.ReadUInt32BigEndian(rh[12..]);
            uint len = BinaryPrimitives.ReadUInt32BigEndian(rh[16..]);
            if (magic != NbdMagic.OptionReply)
                throw new NbdProtocolException($"bad option reply magic 0x{magic:x16} from server (export '{exportName}')");
            if (option != (uint)NbdOption.Go)
                throw new NbdProtocolException($"server answered option {option} while NBD_OPT_GO was pending (export '{exportName}')");
            if (len > MaxOptionReply)
                throw new NbdProtocolException($"option reply of {len} bytes is too large (export '{exportName}')");
            byte[] data = new byte[len];
            BlockingIo.ReadExact(socket, data, "NBD_OPT_GO reply data");

            if (type == NbdOptionReplyType.ErrUnsup) return null; // NOTE: proto.md: old servers answer GO with ERR_UNSUP; fall back to EXPORT_NAME.
            if (((uint)type & 0x8000_0000) != 0)
            {
                string msgText = data.Length > 0 ? ": " + Encoding.UTF8.GetString(data) : "";
                throw new NbdProtocolException($"NBD server refused export '{exportName}': {ReplyName(type)}{msgText}") { ServerReply = type };
            }
            if (type == NbdOptionReplyType.Ack)
            {
                if (size == null) throw new NbdProtocolException($"server acknowledged NBD_OPT_GO for export '{exportName}' without sending NBD_INFO_EXPORT");
                return new NbdExportInfo(exportName, size.Value, flags, true, min, pref, max);
            }
            if (type != NbdOptionReplyType.Info) continue; // NOTE: proto.md: unknown non-error replies are ignored.
            if (data.Length < 2) throw new NbdProtocolException($"NBD_REP_INFO shorter than 2 bytes (export '{exportName}')");
            var info = (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(data);
            switch (info)
            {
                case NbdInfoType.Export:
                    if (data.Length != 12) throw new NbdProtocolException($"NBD_INFO_EXPORT of {data.Length} bytes (expected 12) for export '{exportName}'");
                    size = BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(2));
                    flags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(10));
                    break;
                case NbdInfoType.BlockSize:
                    if (data.Length != 14) throw new NbdProtocolException($"NBD_INFO_BLOCK_SIZE of {data.Length} bytes (expected 14) for export '{exportName}'");
                    min = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(2));
                    pref = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(6));
                    max = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(10));
                    break;
            }
        }
    }

    private static NbdExportInfo ExportName(Socket socket, string exportName, byte[] name, bool noZeroes)
    {
        byte[] msg = new byte[NbdMagic.OptionHeaderSize + name.Length];
        BinaryPrimitives.WriteUInt64BigEndian(msg, NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(8), (uint)NbdOption.ExportName);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), (uint)name.Length);
        name.CopyTo(msg.AsSpan(16));
        BlockingIo.WriteAll(socket, msg);
        byte[] answer = new byte[10 + (noZeroes ? 0 : NbdMagic.ExportNameZeroPad)];
        try { BlockingIo.ReadExact(socket, answer, "the NBD_OPT_EXPORT_NAME answer"); }
        catch (NbdProtocolException e)
        {
            // NOTE: proto.md: a server unwilling to serve an EXPORT_NAME request can only close the connection.
            throw new NbdProtocolException($"NBD server closed the connection after NBD_OPT_EXPORT_NAME: export '{exportName}' probably does not exist", e);
        }
        return new NbdExportInfo(exportName, BinaryPrimitives.ReadUInt64BigEndian(answer),
            (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(answer.AsSpan(8)), false);
    }

    public static string ReplyName(NbdOptionReplyType type) => type switch
    {
        NbdOptionReplyType.ErrUnsup => "NBD_REP_ERR_UNSUP",
        NbdOptionReplyType.ErrPolicy => "NBD_REP_ERR_POLICY",
        NbdOptionReplyType.ErrInvalid => "NBD_REP_ERR_INVALID",
        NbdOptionReplyType.ErrPlatform => "NBD_REP_ERR_PLATFORM",
        NbdOptionReplyType.ErrTlsReqd => "NBD_REP_ERR_TLS_REQD",
        NbdOptionReplyType.ErrUnknown => "NBD_REP_ERR_UNKNOWN",
        NbdOptionReplyType.ErrShutdown => "NBD_REP_ERR_SHUTDOWN",
        NbdOptionReplyType.ErrBlockSizeReqd => "NBD_REP_ERR_BLOCK_SIZE_REQD",
        NbdOptionReplyType.ErrTooBig => "NBD_REP_ERR_TOO_BIG",
        _ => $"option reply error 0x{(uint)type:x8}",
    };
}
