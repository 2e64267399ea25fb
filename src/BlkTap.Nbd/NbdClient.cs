using System.Buffers.Binary;
using System.Net.Sockets;
using BlkTap.Nbd.Internal;

namespace BlkTap.Nbd;

/// <summary>
/// An NBD client for one export, built to be driven by a single-threaded event loop (the tap's).
/// <para>
/// Life cycle: <see cref="Connect"/> opens the socket and runs the fixed newstyle handshake (blocking, with a
/// timeout): NBD_OPT_GO, or NBD_OPT_EXPORT_NAME when the server does not know GO. Afterwards the socket is
/// non-blocking and the loop drives the client: <see cref="Submit"/> queues requests, <see cref="Flush"/>
/// pushes queued bytes (call <see cref="OnWritable"/> when the socket becomes writable while
/// <see cref="HasPendingSend"/> is true), <see cref="OnReadable"/> consumes replies. Many requests may be in
/// flight; replies are matched by cookie and may arrive in any order. Only simple replies are used
/// (structured replies are never negotiated).
/// </para>
/// <para>
/// Buffers: the caller owns the <see cref="Memory{T}"/> passed to <see cref="Submit"/> and must keep it alive
/// and unchanged (WRITE) or untouched (READ) until <see cref="INbdCompletionSink.OnCompleted"/> reports that
/// request. READ data is received straight into it; WRITE data is sent from it (small payloads are copied).
/// </para>
/// <para>
/// Failure: a garbage reply (bad magic, unknown cookie, structured reply), a socket error or the server closing
/// the connection completes every pending request with <see cref="NbdError.ConnectionLost"/>, disposes the
/// socket and sets <see cref="IsBroken"/>; <see cref="Reconnect"/> opens a new socket (the loop must poll the
/// new <see cref="Socket"/>).
/// </para>
/// <para>Threading: not thread-safe. Every member must be called from the one thread that owns the loop; all
/// completions are delivered on that thread.</para>
/// </summary>
public sealed partial class NbdClient : IDisposable
{
    // NOTE: proto.md "Transmission": requests are 28-byte headers (+ payload for WRITE), replies are 16-byte
    // simple reply headers (+ payload for a successful READ); both big-endian.
    private const int StageSize = 64 * 1024;
    private const int CopyPayloadLimit = 16 * 1024;
    private const int RxSize = 64 * 1024;
    private const int DirectReceiveThreshold = 16 * 1024;

    private readonly NbdUri _uri;
    private readonly INbdCompletionSink _sink;
    private readonly TimeSpan _handshakeTimeout;
    private readonly NbdRequestTable _table = new();
    private readonly Queue<int> _sendQueue = new();
    private readonly byte[] _stage = new byte[StageSize];
    private readonly byte[] _rx = new byte[RxSize];

    private Socket? _socket;
    private NbdExportInfo _info;
    private int _epoch;            // bumped on every fail / reconnect / dispose; lets callers notice re-entrant changes
    private bool _disposed;
    private bool _disconnectSent;
    private string? _brokenReason;

    private int _stageStart, _stageEnd;
    private int _directSlot = -1;  // WRITE whose payload is being sent straight from the caller's buffer
    private int _directSent;

    private int _rxStart, _rxEnd;
    private int _rxSlot = -1;      // READ whose payload is being received
    private int _rxDone;

    private NbdClient(NbdUri uri, INbdCompletionSink sink, TimeSpan handshakeTimeout, Socket socket, NbdExportInfo info)
    {
        _uri = uri;
        _sink = sink;
        _handshakeTimeout = handshakeTimeout;
        _socket = socket;
        _info = info;
    }

    /// <summary>
    /// Connects to <paramref name="uri"/> and completes the handshake. Blocks the calling thread for at most
    /// about <paramref name="handshakeTimeout"/> (default 30 s) per network step.
    /// </summary>
    /// <exception cref="NbdProtocolException">The server refused the export (the message names the export and
    /// the NBD_REP_ERR_* value) or broke the protocol.</exception>
    /// <exception cref="SocketException">The server could not be reached.</exception>
    public static NbdClient Connect(NbdUri uri, INbdCompletionSink sink, TimeSpan? handshakeTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(uri);
        ArgumentNullException.ThrowIfNull(sink);
        var timeout = handshakeTimeout ?? TimeSpan.FromSeconds(30);
        var (socket, info) = Open(uri, timeout);
        return new NbdClient(uri, sink, timeout, socket, info);
    }

    /// <summary>The server location.</summary>
    public NbdUri Uri => _uri;

    /// <summary>The socket to poll (readable: call <see cref="OnReadable"/>; writable: <see cref="OnWritable"/>).
    /// Null while broken or disposed. Changes after <see cref="Reconnect"/>.</summary>
    public Socket? Socket => _socket;

    /// <summary>What the last handshake learned.</summary>
    public NbdExportInfo ExportInfo => _info;

    /// <summary>Export size in bytes.</summary>
    public ulong ExportSize => _info.Size;

    /// <summary>Transmission flags the server sent.</summary>
    public NbdTransmissionFlags TransmissionFlags => _info.Flags;

    /// <summary>True after the connection failed (or was disconnected); only <see cref="Reconnect"/> helps.</summary>
    public bool IsBroken => _socket == null;

    /// <summary>Why the client is broken, or null.</summary>
    public string? BrokenReason => _brokenReason;

    /// <summary>Requests submitted and not yet completed.</summary>
    public int InFlight => _table.Count;

    /// <summary>True while queued request bytes wait for the socket to become writable.</summary>
    public bool HasPendingSend => _socket != null && (_stageEnd > _stageStart || _directSlot >= 0 || _sendQueue.Count > 0);

    /// <summary>Largest READ/WRITE length accepted by <see cref="Submit"/> (32 MiB, or less if the server said so).</summary>
    public uint MaxPayload => Math.Min(NbdMagic.MaxPayload, Math.Max(_info.MaximumBlockSize, 512u));

    /// <summary>
    /// Queues one request; nothing is sent until <see cref="Flush"/>. READ fills <paramref name="buffer"/>
    /// (at least <paramref name="length"/> bytes); WRITE sends its first <paramref name="length"/> bytes; FLUSH,
    /// TRIM and DISC ignore it. DISC completes (with 0) as soon as it is queued for sending; afterwards no request
    /// may be submitted. Errors the server reports arrive through the sink, never as exceptions.
    /// </summary>
    /// <exception cref="InvalidOperationException">The client is broken, disposed or disconnected.</exception>
    /// <exception cref="ArgumentException">The buffer is too short, the length exceeds <see cref="MaxPayload"/>,
    /// or the command is not one this client sends.</exception>
    /// <exception cref="NotSupportedException">The server did not advertise the command or flag
    /// (FLUSH needs SEND_FLUSH, TRIM SEND_TRIM, WRITE_ZEROES SEND_WRITE_ZEROES, FUA SEND_FUA).</exception>
    public void Submit(NbdCommand command, ulong offset, uint length, Memory<byte> buffer, ulong userToken,
        NbdCommandFlags flags = NbdCommandFlags.None)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_socket == null)
            throw new InvalidOperationException($"NBD connection to {_uri} is broken ({_brokenReason}); call Reconnect()");
        if (_disconnectSent)
            throw new InvalidOperationException($"NBD_CMD_DISC was already sent to {_uri}");
        var tf = _info.Flags;
        switch (command)
        {
            case NbdCommand.Read:
            case NbdCommand.Write:
                if (length > MaxPayload)
                    throw new ArgumentException($"NBD {command} of {length} bytes exceeds the maximum payload of {MaxPayload} bytes", nameof(length));
                if (buffer.Length < length)
                    throw new ArgumentException($"buffer of {buffer.Length} bytes is shorter than the {length}-byte {command}", nameof(buffer));
                break;
            case NbdCommand.Flush:
                if ((tf & NbdTransmissionFlags.SendFlush) == 0) throw new NotSupportedException($"NBD server {_uri} does not support FLUSH (no NBD_FLAG_SEND_FLUSH)");
                if (offset != 0 || length != 0) throw new ArgumentException("NBD FLUSH must have offset 0 and length 0 (proto.md NBD_CMD_FLUSH)");
                break;
            case NbdCommand.Trim:
                if ((tf & NbdTransmissionFlags.SendTrim) == 0) throw new NotSupportedException($"NBD server {_uri} does not support TRIM (no NBD_FLAG_SEND_TRIM)");
                break;
            case NbdCommand.WriteZeroes:
                if ((tf & NbdTransmissionFlags.SendWriteZeroes) == 0) throw new NotSupportedException($"NBD server {_uri} does not support WRITE_ZEROES");
                break;
            case NbdCommand.Disconnect:
                break;
            default:
                throw new ArgumentException($"NbdClient does not send command {command}", nameof(command));
        }
        // NOTE: proto.md "Request message": a client MUST NOT set NBD_CMD_FLAG_FUA unless the server set NBD_FLAG_SEND_FUA.
        if ((flags & NbdCommandFlags.Fua) != 0 && (tf & NbdTransmissionFlags.SendFua) == 0)
            throw new NotSupportedException($"NBD server {_uri} does not support FUA (no NBD_FLAG_SEND_FUA)");
        if ((flags & ~(NbdCommandFlags.Fua | NbdCommandFlags.NoHole)) != 0)
            throw new ArgumentException($"unsupported command flags {flags}", nameof(flags));

        int index = _table.Allocate();
        ref var slot = ref _table[index];
        slot.UserToken = userToken;
        slot.Buffer = command is NbdCommand.Read or NbdCommand.Write ? buffer : default;
        slot.Command = command;
        slot.Flags = flags;
        slot.Offset = offset;
        slot.Length = length;
        if (command == NbdCommand.Disconnect) _disconnectSent = true;
        _sendQueue.Enqueue(index);
    }

    /// <summary>
    /// Drops the current connection (failing pending requests with <see cref="NbdError.ConnectionLost"/>), then
    /// connects and handshakes again (blocking). On failure the client stays broken and the exception propagates.
    /// </summary>
    /// <exception cref="NbdProtocolException">The handshake failed.</exception>
    /// <exception cref="SocketException">The server could not be reached.</exception>
    public void Reconnect()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Fail("reconnecting");
        Socket socket;
        NbdExportInfo info;
        try
        {
            (socket, info) = Open(_uri, _handshakeTimeout);
        }
        catch (Exception e) when (e is SocketException or NbdProtocolException)
        {
            _brokenReason = "reconnect failed: " + e.Message;
            throw;
        }
        _epoch++;
        _socket = socket;
        _info = info;
        _brokenReason = null;
        _disconnectSent = false;
    }

    /// <summary>Sends NBD_CMD_DISC if possible, fails pending requests with <see cref="NbdError.ConnectionLost"/>
    /// and closes the socket. Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (_socket != null && !_disconnectSent && !HasPendingSend && _table.Count == 0)
        {
            Span<byte> disc = stackalloc byte[NbdMagic.RequestHeaderSize];
            new NbdRequestHeader(NbdCommandFlags.None, NbdCommand.Disconnect, 0, 0, 0).Write(disc);
            _socket.Send(disc, SocketFlags.None, out _);
        }
        Fail("client disposed");
        _disposed = true;
    }

    /// <summary>Marks the client broken and completes every pending request with ConnectionLost.</summary>
    private void Fail(string reason)
    {
        _epoch++;
        if (_socket != null)
        {
            _brokenReason = reason;
            try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
            _socket.Dispose();
            _socket = null;
        }
        _sendQueue.Clear();
        _stageStart = _stageEnd = 0;
        _directSlot = -1;
        _rxStart = _rxEnd = 0;
        _rxSlot = -1;
        if (_table.Count == 0) return;
        var tokens = new List<ulong>(_table.Count);
        for (int i = 0; i < _table.Capacity; i++)
        {
            if (!_table[i].InUse) continue;
            tokens.Add(_table[i].UserToken);
            _table.Release(i);
        }
        foreach (var token in tokens) _sink.OnCompleted(token, NbdError.ConnectionLost);
    }

    private static (Socket, NbdExportInfo) Open(NbdUri uri, TimeSpan timeout)
    {
        Socket socket = uri.Transport == NbdTransport.Unix
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (uri.Transport == NbdTransport.Tcp) socket.NoDelay = true;
            int ms = (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
            socket.ReceiveTimeout = ms;
            socket.SendTimeout = ms;
            socket.Connect(uri.ToEndPoint());
            var info = NbdClientHandshake.Run(socket, uri.ExportName);
            socket.ReceiveTimeout = 0;
            socket.SendTimeout = 0;
            socket.Blocking = false;
            return (socket, info);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
