namespace BlkTap.Nbd;

// NOTE: every value in this file is taken from the NBD protocol document
// (NetworkBlockDevice/nbd doc/proto.md, "Values" and "Handshake" sections); all
// multi-byte fields on the wire are big-endian ("network byte order").

/// <summary>Magic numbers and fixed sizes of the NBD wire protocol. Immutable; thread-safe.</summary>
public static class NbdMagic
{
    /// <summary>'NBDMAGIC', the first 8 bytes the server sends in every handshake style.</summary>
    public const ulong NbdMagicValue = 0x4e42444d41474943UL;

    /// <summary>'IHAVEOPT', second magic of the newstyle greeting and first field of each option request.</summary>
    public const ulong IHaveOpt = 0x49484156454F5054UL;

    /// <summary>Oldstyle greeting's second magic (<c>cliserv_magic</c>); not supported by this implementation.</summary>
    public const ulong OldstyleMagic = 0x00420281861253UL;

    /// <summary>Magic at the start of every fixed-newstyle option reply.</summary>
    public const ulong OptionReply = 0x3e889045565a9UL;

    /// <summary>Magic at the start of every transmission request (<c>NBD_REQUEST_MAGIC</c>).</summary>
    public const uint Request = 0x25609513;

    /// <summary>Magic at the start of every simple reply (<c>NBD_SIMPLE_REPLY_MAGIC</c>).</summary>
    public const uint SimpleReply = 0x67446698;

    /// <summary>Magic of a structured reply chunk (never negotiated here; only recognised in errors).</summary>
    public const uint StructuredReply = 0x668e33ef;

    /// <summary>The default TCP port IANA reserved for NBD.</summary>
    public const int DefaultPort = 10809;

    /// <summary>Bytes in a transmission request header.</summary>
    public const int RequestHeaderSize = 28;

    /// <summary>Bytes in a simple reply header.</summary>
    public const int SimpleReplyHeaderSize = 16;

    /// <summary>Bytes in an option request header (magic, option, length).</summary>
    public const int OptionHeaderSize = 16;

    /// <summary>Bytes in an option reply header (magic, option, type, length).</summary>
    public const int OptionReplyHeaderSize = 20;

    /// <summary>Reserved zero bytes after an NBD_OPT_EXPORT_NAME answer, unless NO_ZEROES was negotiated.</summary>
    public const int ExportNameZeroPad = 124;

    /// <summary>
    /// Largest request payload this implementation sends or accepts: 32 MiB.
    /// NOTE: proto.md "Block size constraints": without negotiated block sizes the maximum payload is 32 MiB,
    /// and a server may fail or disconnect for larger requests.
    /// </summary>
    public const uint MaxPayload = 32u * 1024 * 1024;

    /// <summary>Largest string (export name, message) the protocol allows: 4096 bytes (proto.md "Conventions").</summary>
    public const int MaxString = 4096;
}

/// <summary>Handshake flags (16 bits, server to client) and client flags (32 bits, client to server).</summary>
[Flags]
public enum NbdHandshakeFlags : ushort
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>NBD_FLAG_FIXED_NEWSTYLE (bit 0): the server supports fixed newstyle negotiation.</summary>
    FixedNewstyle = 1 << 0,
    /// <summary>NBD_FLAG_NO_ZEROES (bit 1): the 124 zero bytes after EXPORT_NAME may be skipped.</summary>
    NoZeroes = 1 << 1,
}

/// <summary>Client flags sent in answer to the greeting (NBD_FLAG_C_*).</summary>
[Flags]
public enum NbdClientFlags : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>NBD_FLAG_C_FIXED_NEWSTYLE (bit 0).</summary>
    FixedNewstyle = 1 << 0,
    /// <summary>NBD_FLAG_C_NO_ZEROES (bit 1).</summary>
    NoZeroes = 1 << 1,
}

/// <summary>Transmission flags (16 bits) describing an export.</summary>
[Flags]
public enum NbdTransmissionFlags : ushort
{
    /// <summary>No flags (invalid on the wire: HAS_FLAGS must be set).</summary>
    None = 0,
    /// <summary>NBD_FLAG_HAS_FLAGS (bit 0), always set.</summary>
    HasFlags = 1 << 0,
    /// <summary>NBD_FLAG_READ_ONLY (bit 1).</summary>
    ReadOnly = 1 << 1,
    /// <summary>NBD_FLAG_SEND_FLUSH (bit 2).</summary>
    SendFlush = 1 << 2,
    /// <summary>NBD_FLAG_SEND_FUA (bit 3).</summary>
    SendFua = 1 << 3,
    /// <summary>NBD_FLAG_ROTATIONAL (bit 4).</summary>
    Rotational = 1 << 4,
    /// <summary>NBD_FLAG_SEND_TRIM (bit 5).</summary>
    SendTrim = 1 << 5,
    /// <summary>NBD_FLAG_SEND_WRITE_ZEROES (bit 6).</summary>
    SendWriteZeroes = 1 << 6,
    /// <summary>NBD_FLAG_SEND_DF (bit 7).</summary>
    SendDf = 1 << 7,
    /// <summary>NBD_FLAG_CAN_MULTI_CONN (bit 8).</summary>
    CanMultiConn = 1 << 8,
    /// <summary>NBD_FLAG_SEND_RESIZE (bit 9).</summary>
    SendResize = 1 << 9,
    /// <summary>NBD_FLAG_SEND_CACHE (bit 10).</summary>
    SendCache = 1 << 10,
    /// <summary>NBD_FLAG_SEND_FAST_ZERO (bit 11).</summary>
    SendFastZero = 1 << 11,
}

/// <summary>Option codes used during fixed newstyle option haggling.</summary>
public enum NbdOption : uint
{
    /// <summary>NBD_OPT_EXPORT_NAME (1): choose the export and enter transmission; no error reply possible.</summary>
    ExportName = 1,
    /// <summary>NBD_OPT_ABORT (2): soft disconnect.</summary>
    Abort = 2,
    /// <summary>NBD_OPT_LIST (3): list exports.</summary>
    List = 3,
    /// <summary>NBD_OPT_STARTTLS (5).</summary>
    StartTls = 5,
    /// <summary>NBD_OPT_INFO (6): describe an export without entering transmission.</summary>
    Info = 6,
    /// <summary>NBD_OPT_GO (7): describe an export and enter transmission.</summary>
    Go = 7,
    /// <summary>NBD_OPT_STRUCTURED_REPLY (8).</summary>
    StructuredReply = 8,
    /// <summary>NBD_OPT_LIST_META_CONTEXT (9).</summary>
    ListMetaContext = 9,
    /// <summary>NBD_OPT_SET_META_CONTEXT (10).</summary>
    SetMetaContext = 10,
    /// <summary>NBD_OPT_EXTENDED_HEADERS (11).</summary>
    ExtendedHeaders = 11,
}

/// <summary>Option reply types. Error replies have bit 31 set.</summary>
public enum NbdOptionReplyType : uint
{
    /// <summary>NBD_REP_ACK (1).</summary>
    Ack = 1,
    /// <summary>NBD_REP_SERVER (2): one export in a LIST answer.</summary>
    Server = 2,
    /// <summary>NBD_REP_INFO (3): one information item in an INFO/GO answer.</summary>
    Info = 3,
    /// <summary>NBD_REP_META_CONTEXT (4).</summary>
    MetaContext = 4,
    /// <summary>NBD_REP_ERR_UNSUP (2^31 + 1): option not known.</summary>
    ErrUnsup = 0x8000_0001,
    /// <summary>NBD_REP_ERR_POLICY (2^31 + 2): forbidden by policy.</summary>
    ErrPolicy = 0x8000_0002,
    /// <summary>NBD_REP_ERR_INVALID (2^31 + 3): syntactically invalid.</summary>
    ErrInvalid = 0x8000_0003,
    /// <summary>NBD_REP_ERR_PLATFORM (2^31 + 4).</summary>
    ErrPlatform = 0x8000_0004,
    /// <summary>NBD_REP_ERR_TLS_REQD (2^31 + 5).</summary>
    ErrTlsReqd = 0x8000_0005,
    /// <summary>NBD_REP_ERR_UNKNOWN (2^31 + 6): the export is not known.</summary>
    ErrUnknown = 0x8000_0006,
    /// <summary>NBD_REP_ERR_SHUTDOWN (2^31 + 7).</summary>
    ErrShutdown = 0x8000_0007,
    /// <summary>NBD_REP_ERR_BLOCK_SIZE_REQD (2^31 + 8).</summary>
    ErrBlockSizeReqd = 0x8000_0008,
    /// <summary>NBD_REP_ERR_TOO_BIG (2^31 + 9).</summary>
    ErrTooBig = 0x8000_0009,
}

/// <summary>Information types carried by NBD_REP_INFO and requested in INFO/GO.</summary>
public enum NbdInfoType : ushort
{
    /// <summary>NBD_INFO_EXPORT (0): size u64 + transmission flags u16.</summary>
    Export = 0,
    /// <summary>NBD_INFO_NAME (1): canonical export name.</summary>
    Name = 1,
    /// <summary>NBD_INFO_DESCRIPTION (2): human readable description.</summary>
    Description = 2,
    /// <summary>NBD_INFO_BLOCK_SIZE (3): minimum, preferred, maximum block size (u32 each).</summary>
    BlockSize = 3,
}

/// <summary>Transmission request types.</summary>
public enum NbdCommand : ushort
{
    /// <summary>NBD_CMD_READ (0).</summary>
    Read = 0,
    /// <summary>NBD_CMD_WRITE (1).</summary>
    Write = 1,
    /// <summary>NBD_CMD_DISC (2): disconnect, no reply.</summary>
    Disconnect = 2,
    /// <summary>NBD_CMD_FLUSH (3).</summary>
    Flush = 3,
    /// <summary>NBD_CMD_TRIM (4).</summary>
    Trim = 4,
    /// <summary>NBD_CMD_CACHE (5).</summary>
    Cache = 5,
    /// <summary>NBD_CMD_WRITE_ZEROES (6).</summary>
    WriteZeroes = 6,
    /// <summary>NBD_CMD_BLOCK_STATUS (7).</summary>
    BlockStatus = 7,
}

/// <summary>Command flags (16 bits) of a transmission request.</summary>
[Flags]
public enum NbdCommandFlags : ushort
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>NBD_CMD_FLAG_FUA (bit 0): force unit access.</summary>
    Fua = 1 << 0,
    /// <summary>NBD_CMD_FLAG_NO_HOLE (bit 1): WRITE_ZEROES must not punch a hole.</summary>
    NoHole = 1 << 1,
    /// <summary>NBD_CMD_FLAG_DF (bit 2).</summary>
    DontFragment = 1 << 2,
    /// <summary>NBD_CMD_FLAG_REQ_ONE (bit 3).</summary>
    ReqOne = 1 << 3,
    /// <summary>NBD_CMD_FLAG_FAST_ZERO (bit 4).</summary>
    FastZero = 1 << 4,
}

/// <summary>
/// Error values carried in the 32-bit error field of a reply. They are the Linux errno values
/// (proto.md "Error values"); <see cref="ConnectionLost"/> is a local value that never appears on the wire.
/// </summary>
public static class NbdError
{
    /// <summary>Success.</summary>
    public const int None = 0;
    /// <summary>EPERM (1): operation not permitted (e.g. write to a read-only export).</summary>
    public const int EPERM = 1;
    /// <summary>EIO (5): input/output error.</summary>
    public const int EIO = 5;
    /// <summary>ENOMEM (12).</summary>
    public const int ENOMEM = 12;
    /// <summary>EINVAL (22): invalid request (past the end, bad length, unknown command).</summary>
    public const int EINVAL = 22;
    /// <summary>ENOSPC (28): write past the end of the export.</summary>
    public const int ENOSPC = 28;
    /// <summary>EOVERFLOW (75).</summary>
    public const int EOVERFLOW = 75;
    /// <summary>ENOTSUP (95): operation not supported.</summary>
    public const int ENOTSUP = 95;
    /// <summary>ESHUTDOWN (108): the server is shutting down.</summary>
    public const int ESHUTDOWN = 108;

    /// <summary>
    /// Local completion code (never sent): the connection to the server was lost or broke (garbage reply,
    /// closed socket) before this request was answered; its outcome is unknown.
    /// </summary>
    public const int ConnectionLost = -1;

    /// <summary>Returns a short name for an error value, e.g. "EIO", or "errno 42" for unknown values.</summary>
    public static string Name(int error) => error switch
    {
        None => "OK",
        EPERM => "EPERM",
        EIO => "EIO",
        ENOMEM => "ENOMEM",
        EINVAL => "EINVAL",
        ENOSPC => "ENOSPC",
        EOVERFLOW => "EOVERFLOW",
        ENOTSUP => "ENOTSUP",
        ESHUTDOWN => "ESHUTDOWN",
        ConnectionLost => "connection lost",
        _ => "errno " + error.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
