using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace BlkTap.Examples.Nbd.Internal;

/// <summary>
/// One accepted client: handshake, then a reader loop that dispatches requests to the backend concurrently
/// (bounded by <see cref="NbdServerOptions.MaxInFlightPerConnection"/>); replies are queued and written in gathered batches.
/// </summary>
internal sealed class NbdServerConnection
{
    // NOTE: proto.md "Option haggling": option data is at most a few strings of <= 4096 bytes; anything
    // far beyond that is treated as abuse and the client is disconnected (allowed for denial of service).
    private const int MaxOptionData = 64 * 1024;

    private readonly Socket _socket;
    private readonly long _id;
    private readonly INbdExportProvider _provider;
    private readonly NbdServerOptions _options;
    private readonly CancellationToken _serverStop;
    private readonly CancellationToken _abort;
    private readonly CancellationTokenSource _abortOrDead;
    private readonly CancellationTokenRegistration _closeOnAbort;
    private readonly SocketReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SemaphoreSlim _inFlight;
    private readonly CancellationTokenSource _dead = new();
    private readonly string _remote;
    private INbdExportBackend? _backend;
    private NbdClientInfo? _info;

    // serverStop: stop reading new requests and options (graceful stop).
    // abort: abandon pending replies (a stop that ran out of patience).
    public NbdServerConnection(Socket socket, long id, INbdExportProvider provider, NbdServerOptions options, CancellationToken serverStop, CancellationToken abort)
    {
        _abort = abort;
        _socket = socket;
        _id = id;
        _provider = provider;
        _options = options;
        _serverStop = serverStop;
        _reader = new SocketReader(socket);
        _inFlight = new SemaphoreSlim(options.MaxInFlightPerConnection, options.MaxInFlightPerConnection);
        _abortOrDead = CancellationTokenSource.CreateLinkedTokenSource(abort, _dead.Token);
        // Abort or a dead connection closes the socket at once: that wakes the reader and any send blocked on a
        // client that does not read its replies, so the connection can finish closing.
        _closeOnAbort = _abortOrDead.Token.Register(static s => ((Socket)s!).Dispose(), socket);
        _remote = socket.RemoteEndPoint?.ToString() is { Length: > 0 } r ? r : "unix";
    }

    private void Log(string message) => _options.Log?.Invoke($"nbd server: connection {_id} ({_remote}): {message}");

    public async Task RunAsync()
    {
        using var stopOrDead = CancellationTokenSource.CreateLinkedTokenSource(_serverStop, _dead.Token);
        try
        {
            bool go;
            using (var hs = CancellationTokenSource.CreateLinkedTokenSource(stopOrDead.Token))
            {
                hs.CancelAfter(_options.HandshakeTimeout);
                go = await HandshakeAsync(hs.Token).ConfigureAwait(false);
            }
            if (go) await TransmissionAsync(stopOrDead.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        catch (EndOfStreamException e) { Log(e.Message); }
        catch (SocketException e) { Log($"socket error {e.SocketErrorCode}"); }
        catch (ObjectDisposedException) { }
        catch (NbdProtocolException e) { Log(e.Message); }
        catch (Exception e) { Log($"unexpected {e.GetType().Name}: {e.Message}"); }
        finally
        {
            await CloseAsync().ConfigureAwait(false);
        }
    }

    private async Task CloseAsync()
    {
        // Let every in-flight request finish (its reply may or may not still reach the client).
        // On abort, replies stop (sends are cancelled) but backend calls still finish, so no buffer is freed early.
        for (int i = 0; i < _options.MaxInFlightPerConnection; i++) await _inFlight.WaitAsync().ConfigureAwait(false);
        if (_backend != null)
        {
            try
            {
                if (!_backend.ReadOnly)
                {
                    int err = await _backend.FlushAsync(_abort).ConfigureAwait(false);
                    if (err != 0) Log($"final flush failed: {NbdError.Name(err)}");
                }
            }
            catch (Exception e) { Log($"final flush threw {e.GetType().Name}: {e.Message}"); }
            try { await _provider.CloseAsync(_backend, _info!).ConfigureAwait(false); }
            catch (Exception e) { Log($"close threw {e.GetType().Name}: {e.Message}"); }
        }
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        _socket.Dispose();
        _closeOnAbort.Dispose();
        _abortOrDead.Dispose();
        _dead.Dispose();
    }

    // ---------------------------------------------------------------- handshake

    private NbdTransmissionFlags FlagsFor(INbdExportBackend b) =>
        NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
        | NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes
        | (b.ReadOnly ? NbdTransmissionFlags.ReadOnly : 0)
        | (b.CanMultiConn ? NbdTransmissionFlags.CanMultiConn : 0);

    /// <summary>Returns true when the client entered transmission with <see cref="_backend"/> open.</summary>
    private async Task<bool> HandshakeAsync(CancellationToken ct)
    {
        byte[] greet = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greet, NbdMagic.NbdMagicValue);
        BinaryPrimitives.WriteUInt64BigEndian(greet.AsSpan(8), NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(greet.AsSpan(16), (ushort)(NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes));
        await SendAllAsync(greet, ct).ConfigureAwait(false);

        byte[] buf = new byte[NbdMagic.OptionHeaderSize];
        if (!await _reader.ReadExactAsync(buf.AsMemory(0, 4), true, ct).ConfigureAwait(false)) return false;
        var clientFlags = (NbdClientFlags)BinaryPrimitives.ReadUInt32BigEndian(buf);
        // NOTE: proto.md "Client flags": the server MUST drop the connection on an unknown client flag.
        if ((clientFlags & ~(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)) != 0)
            throw new NbdProtocolException($"unknown client flags 0x{(uint)clientFlags:x8}; disconnecting");
        bool fixedNewstyle = (clientFlags & NbdClientFlags.FixedNewstyle) != 0;
        bool noZeroes = (clientFlags & NbdClientFlags.NoZeroes) != 0;

        for (int count = 0; ; count++)
        {
            if (count >= _options.MaxOptionsPerHandshake) throw new NbdProtocolException($"more than {_options.MaxOptionsPerHandshake} options; disconnecting");
            if (!await _reader.ReadExactAsync(buf, true, ct).ConfigureAwait(false)) return false;
            ulong magic = BinaryPrimitives.ReadUInt64BigEndian(buf);
            uint option = BinaryPrimitives.ReadUInt32BigEndian(buf.AsSpan(8));
            uint len = BinaryPrimitives.ReadUInt32BigEndian(buf.AsSpan(12));
            if (magic != NbdMagic.IHaveOpt) throw new NbdProtocolException($"bad option magic 0x{magic:x16}; disconnecting");
            if (len > MaxOptionData) throw new NbdProtocolException($"option {option} with {len} bytes of data; disconnecting");
            byte[] data = new byte[len];
            await _reader.ReadExactAsync(data, false, ct).ConfigureAwait(false);

            // NOTE: proto.md "Newstyle negotiation": without fixed newstyle only NBD_OPT_EXPORT_NAME is valid
            // and the server can only close the connection on anything else.
            if (!fixedNewstyle && option != (uint)NbdOption.ExportName)
                throw new NbdProtocolException($"option {option} from a non-fixed-newstyle client; disconnecting");

            switch ((NbdOption)option)
            {
                case NbdOption.ExportName:
                {
                    string name = DecodeName(data);
                    if (!await OpenAsync(name, ct).ConfigureAwait(false))
                        throw new NbdProtocolException($"NBD_OPT_EXPORT_NAME for unknown export '{name}'; disconnecting (the only refusal this option allows)");
                    byte[] answer = new byte[10 + (noZeroes ? 0 : NbdMagic.ExportNameZeroPad)];
                    BinaryPrimitives.WriteUInt64BigEndian(answer, _backend!.Size);
                    BinaryPrimitives.WriteUInt16BigEndian(answer.AsSpan(8), (ushort)FlagsFor(_backend));
                    await SendAllAsync(answer, ct).ConfigureAwait(false);
                    return true;
                }
                case NbdOption.Abort:
                    await SendOptionReplyAsync(option, NbdOptionReplyType.Ack, default, ct).ConfigureAwait(false);
                    return false;
                case NbdOption.List:
                    if (len != 0)
                    {
                        await SendErrorAsync(option, NbdOptionReplyType.ErrInvalid, "NBD_OPT_LIST takes no data", ct).ConfigureAwait(false);
                        break;
                    }
                    foreach (var exportName in _provider.ExportNames)
                    {
                        byte[] n = Encoding.UTF8.GetBytes(exportName);
                        byte[] rep = new byte[4 + n.Length];
                        BinaryPrimitives.WriteUInt32BigEndian(rep, (uint)n.Length);
                        n.CopyTo(rep, 4);
                        await SendOptionReplyAsync(option, NbdOptionReplyType.Server, rep, ct).ConfigureAwait(false);
                    }
                    await SendOptionReplyAsync(option, NbdOptionReplyType.Ack, default, ct).ConfigureAwait(false);
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    if (await InfoOrGoAsync(option, data, ct).ConfigureAwait(false)) return true;
                    break;
                default:
                    // NOTE: proto.md: unknown options (and STRUCTURED_REPLY, STARTTLS, meta contexts, which this
                    // server does not implement) are answered NBD_REP_ERR_UNSUP and negotiation continues.
                    await SendErrorAsync(option, NbdOptionReplyType.ErrUnsup, $"option {option} is not supported by this server", ct).ConfigureAwait(false);
                    break;
            }
        }
    }

    private static string DecodeName(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > NbdMagic.MaxString) throw new NbdProtocolException($"export name of {bytes.Length} bytes (limit {NbdMagic.MaxString}); disconnecting");
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Answers NBD_OPT_INFO or NBD_OPT_GO; returns true when GO succeeded.</summary>
    private async Task<bool> InfoOrGoAsync(uint option, byte[] data, CancellationToken ct)
    {
        // NOTE: proto.md NBD_OPT_INFO/GO data: u32 name length, name, u16 request count, u16 each.
        if (data.Length < 6) { await SendErrorAsync(option, NbdOptionReplyType.ErrInvalid, "option data shorter than 6 bytes", ct).ConfigureAwait(false); return false; }
        uint nameLen = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLen > NbdMagic.MaxString || 4 + nameLen + 2 > data.Length)
        {
            await SendErrorAsync(option, NbdOptionReplyType.ErrInvalid, "export name length does not fit the option data", ct).ConfigureAwait(false);
            return false;
        }
        int pos = 4 + (int)nameLen;
        int nreq = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(pos));
        if (pos + 2 + 2 * nreq != data.Length)
        {
            await SendErrorAsync(option, NbdOptionReplyType.ErrInvalid, "information request count does not match the option length", ct).ConfigureAwait(false);
            return false;
        }
        bool wantName = false, wantDescription = false;
        for (int i = 0; i < nreq; i++)
        {
            var t = (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(pos + 2 + 2 * i));
            if (t == NbdInfoType.Name) wantName = true;
            if (t == NbdInfoType.Description) wantDescription = true;
        }
        string name = Encoding.UTF8.GetString(data, 4, (int)nameLen);
        if (!await OpenAsync(name, ct).ConfigureAwait(false))
        {
            await SendErrorAsync(option, NbdOptionReplyType.ErrUnknown, $"export '{name}' not found", ct).ConfigureAwait(false);
            return false;
        }
        var backend = _backend!;
        byte[] exp = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(exp, (ushort)NbdInfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(exp.AsSpan(2), backend.Size);
        BinaryPrimitives.WriteUInt16BigEndian(exp.AsSpan(10), (ushort)FlagsFor(backend));
        await SendOptionReplyAsync(option, NbdOptionReplyType.Info, exp, ct).ConfigureAwait(false);
        if (wantName || wantDescription)
        {
            byte[] n = Encoding.UTF8.GetBytes(name);
            byte[] rep = new byte[2 + n.Length];
            BinaryPrimitives.WriteUInt16BigEndian(rep, (ushort)(wantName ? NbdInfoType.Name : NbdInfoType.Description));
            n.CopyTo(rep, 2);
            if (wantName) await SendOptionReplyAsync(option, NbdOptionReplyType.Info, rep, ct).ConfigureAwait(false);
        }
        // NOTE: proto.md NBD_INFO_BLOCK_SIZE: min 1 (no alignment needed), preferred 4096, max = 32 MiB payload limit.
        byte[] bs = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(bs, (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(6), 4096);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(10), NbdMagic.MaxPayload);
        await SendOptionReplyAsync(option, NbdOptionReplyType.Info, bs, ct).ConfigureAwait(false);
        await SendOptionReplyAsync(option, NbdOptionReplyType.Ack, default, ct).ConfigureAwait(false);
        if (option == (uint)NbdOption.Go) return true;
        // INFO: the export is not used; close what we opened.
        _backend = null;
        await _provider.CloseAsync(backend, _info!).ConfigureAwait(false);
        return false;
    }

    private async Task<bool> OpenAsync(string name, CancellationToken ct)
    {
        if (_backend != null) { await _provider.CloseAsync(_backend, _info!).ConfigureAwait(false); _backend = null; }
        var info = new NbdClientInfo(_id, _remote, name);
        var backend = await _provider.OpenAsync(info, ct).ConfigureAwait(false);
        if (backend == null) return false;
        _backend = backend;
        _info = info;
        return true;
    }

    private Task SendErrorAsync(uint option, NbdOptionReplyType type, string message, CancellationToken ct) =>
        SendOptionReplyAsync(option, type, Encoding.UTF8.GetBytes(message), ct);

    private async Task SendOptionReplyAsync(uint option, NbdOptionReplyType type, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        byte[] msg = new byte[NbdMagic.OptionReplyHeaderSize + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(msg, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(16), (uint)data.Length);
        data.CopyTo(msg.AsMemory(20));
        await SendAllAsync(msg, ct).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- transmission

    private async Task TransmissionAsync(CancellationToken ct)
    {
        var backend = _backend!;
        ulong size = backend.Size;
        byte[] hdr = new byte[NbdMagic.RequestHeaderSize];
        while (true)
        {
            await _inFlight.WaitAsync(ct).ConfigureAwait(false);
            bool handedOff = false;
            try
            {
                if (!await _reader.ReadExactAsync(hdr, true, ct).ConfigureAwait(false)) return; // clean EOF
                if (!NbdRequestHeader.TryRead(hdr, out var req, out var error))
                    throw new NbdProtocolException(error + "; disconnecting");
                bool fua = (req.Flags & NbdCommandFlags.Fua) != 0;
                bool inRange = req.Offset <= size && req.Length <= size - req.Offset;
                switch (req.Command)
                {
                    case NbdCommand.Disconnect:
                        return; // NOTE: proto.md NBD_CMD_DISC: finish outstanding requests, then close; no reply.
                    case NbdCommand.Write:
                    {
                        // NOTE: proto.md "Block size constraints": a write payload beyond the maximum may be met
                        // with a hard disconnect, since the payload cannot be trusted or skipped cheaply.
                        if (req.Length > NbdMagic.MaxPayload)
                            throw new NbdProtocolException($"WRITE of {req.Length} bytes exceeds the 32 MiB limit; disconnecting");
                        byte[] payload = ArrayPool<byte>.Shared.Rent((int)req.Length);
                        try { await _reader.ReadExactAsync(payload.AsMemory(0, (int)req.Length), false, ct).ConfigureAwait(false); }
                        catch { ArrayPool<byte>.Shared.Return(payload); throw; }
                        int err = backend.ReadOnly ? NbdError.EPERM : !inRange ? NbdError.ENOSPC : 0; // NOTE: proto.md "Error values": ENOSPC for writes past the end.
                        if (err != 0)
                        {
                            ArrayPool<byte>.Shared.Return(payload);
                            QueueSimpleReply(req.Cookie, err, releaseSlot: false);
                            break;
                        }
                        handedOff = true;
                        _ = RunWriteAsync(backend, req, payload, fua);
                        break;
                    }
                    case NbdCommand.Read:
                        if (req.Length > NbdMagic.MaxPayload || !inRange)
                        {
                            QueueSimpleReply(req.Cookie, NbdError.EINVAL, releaseSlot: false);
                            break;
                        }
                        handedOff = true;
                        _ = RunReadAsync(backend, req);
                        break;
                    case NbdCommand.Flush:
                    case NbdCommand.Trim:
                    case NbdCommand.WriteZeroes:
                        if (req.Command != NbdCommand.Flush && (backend.ReadOnly || !inRange))
                        {
                            int e = backend.ReadOnly ? NbdError.EPERM : req.Command == NbdCommand.WriteZeroes ? NbdError.ENOSPC : NbdError.EINVAL;
                            QueueSimpleReply(req.Cookie, e, releaseSlot: false);
                            break;
                        }
                        handedOff = true;
                        _ = RunOtherAsync(backend, req, fua);
                        break;
                    default:
                        // NOTE: proto.md: an unknown or unnegotiated command is answered EINVAL.
                        QueueSimpleReply(req.Cookie, NbdError.EINVAL, releaseSlot: false);
                        break;
                }
            }
            finally
            {
                if (!handedOff) _inFlight.Release();
            }
        }
    }

    private async Task RunWriteAsync(INbdExportBackend backend, NbdRequestHeader req, byte[] payload, bool fua)
    {
        int err;
        try { err = Normalize(await backend.WriteAsync(req.Offset, payload.AsMemory(0, (int)req.Length), fua, CancellationToken.None).ConfigureAwait(false)); }
        catch (Exception e) { err = BackendThrew(e, "WRITE"); }
        finally { ArrayPool<byte>.Shared.Return(payload); }
        QueueSimpleReply(req.Cookie, err, releaseSlot: true);
    }

    private async Task RunReadAsync(INbdExportBackend backend, NbdRequestHeader req)
    {
        int len = (int)req.Length;
        byte[] buf = ArrayPool<byte>.Shared.Rent(NbdMagic.SimpleReplyHeaderSize + len);
        int err;
        try { err = Normalize(await backend.ReadAsync(req.Offset, buf.AsMemory(NbdMagic.SimpleReplyHeaderSize, len), CancellationToken.None).ConfigureAwait(false)); }
        catch (Exception e) { err = BackendThrew(e, "READ"); }
        if (err != 0)
        {
            ArrayPool<byte>.Shared.Return(buf);
            QueueSimpleReply(req.Cookie, err, releaseSlot: true);
            return;
        }
        new NbdSimpleReply(0, req.Cookie).Write(buf);
        QueueReply(buf, NbdMagic.SimpleReplyHeaderSize + len, releaseSlot: true);
    }

    private async Task RunOtherAsync(INbdExportBackend backend, NbdRequestHeader req, bool fua)
    {
        int err;
        try
        {
            err = Normalize(req.Command switch
            {
                NbdCommand.Flush => await backend.FlushAsync(CancellationToken.None).ConfigureAwait(false),
                NbdCommand.Trim => await backend.TrimAsync(req.Offset, req.Length, fua, CancellationToken.None).ConfigureAwait(false),
                _ => await backend.WriteZeroesAsync(req.Offset, req.Length, fua, (req.Flags & NbdCommandFlags.NoHole) == 0, CancellationToken.None).ConfigureAwait(false),
            });
        }
        catch (Exception e) { err = BackendThrew(e, req.Command.ToString()); }
        QueueSimpleReply(req.Cookie, err, releaseSlot: true);
    }

    // ---------------------------------------------------------------- replies in transmission
    // Replies are queued and written by one sender at a time, many per system call: while a send is under
    // way, the replies that complete meanwhile (a whole loop pass of them, typically) gather for the next.
    // A request's in-flight slot is released once its reply has been written (or the connection died), so a
    // client that stops reading its replies is throttled rather than buffered without bound.

    private readonly object _replyGate = new();
    private List<(byte[] Buffer, int Length, bool ReleaseSlot)> _replies = new();
    private List<(byte[] Buffer, int Length, bool ReleaseSlot)> _replySpare = new();
    private readonly List<ArraySegment<byte>> _segments = new();
    private bool _senderRunning;

    private void QueueSimpleReply(ulong cookie, int error, bool releaseSlot)
    {
        byte[] msg = ArrayPool<byte>.Shared.Rent(NbdMagic.SimpleReplyHeaderSize);
        new NbdSimpleReply((uint)error, cookie).Write(msg);
        QueueReply(msg, NbdMagic.SimpleReplyHeaderSize, releaseSlot);
    }

    /// <summary>Takes ownership of <paramref name="rented"/> (returned to the pool after the send).</summary>
    private void QueueReply(byte[] rented, int length, bool releaseSlot)
    {
        lock (_replyGate)
        {
            _replies.Add((rented, length, releaseSlot));
            if (_senderRunning) return;
            _senderRunning = true;
        }
        // Off the caller's thread (often the tap loop), so the replies of the rest of its pass can gather.
        ThreadPool.UnsafeQueueUserWorkItem(static c => _ = ((NbdServerConnection)c!).SendRepliesAsync(), this);
    }

    private async Task SendRepliesAsync()
    {
        while (true)
        {
            List<(byte[] Buffer, int Length, bool ReleaseSlot)> batch;
            lock (_replyGate)
            {
                if (_replies.Count == 0) { _senderRunning = false; return; }
                batch = _replies;
                _replies = _replySpare;
                _replySpare = batch;
            }
            try
            {
                _segments.Clear();
                foreach (var r in batch) _segments.Add(new ArraySegment<byte>(r.Buffer, 0, r.Length));
                await SendGatheredAsync(_segments).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException) { Kill(); }
            finally
            {
                foreach (var r in batch)
                {
                    ArrayPool<byte>.Shared.Return(r.Buffer);
                    if (r.ReleaseSlot) _inFlight.Release();
                }
                batch.Clear();
            }
        }
    }

    private async Task SendGatheredAsync(List<ArraySegment<byte>> segments)
    {
        if (_abortOrDead.IsCancellationRequested) throw new OperationCanceledException();
        while (segments.Count > 0)
        {
            int n = await _socket.SendAsync(segments, SocketFlags.None).ConfigureAwait(false);
            if (n <= 0) throw new SocketException((int)SocketError.ConnectionReset);
            // Drop what was sent (a partial send leaves the rest of a segment).
            int i = 0;
            while (i < segments.Count && n >= segments[i].Count) { n -= segments[i].Count; i++; }
            segments.RemoveRange(0, i);
            if (n > 0) segments[0] = segments[0].Slice(n);
        }
    }

    private static int Normalize(int err) => err < 0 ? NbdError.EIO : err;

    private int BackendThrew(Exception e, string what)
    {
        Log($"backend {what} threw {e.GetType().Name}: {e.Message}; answering EIO");
        return NbdError.EIO;
    }

    private void Kill()
    {
        try { _dead.Cancel(); } catch (ObjectDisposedException) { }
    }

    private async Task SendReplyAsync(ulong cookie, int error)
    {
        byte[] msg = ArrayPool<byte>.Shared.Rent(NbdMagic.SimpleReplyHeaderSize);
        try
        {
            new NbdSimpleReply((uint)error, cookie).Write(msg);
            await SendLockedAsync(msg.AsMemory(0, NbdMagic.SimpleReplyHeaderSize)).ConfigureAwait(false);
        }
        finally { ArrayPool<byte>.Shared.Return(msg); }
    }

    private async Task SendLockedAsync(ReadOnlyMemory<byte> data)
    {
        await _writeLock.WaitAsync(_abortOrDead.Token).ConfigureAwait(false);
        try { await SendAllAsync(data, _abortOrDead.Token).ConfigureAwait(false); }
        finally { _writeLock.Release(); }
    }

    private async Task SendAllAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        while (data.Length > 0)
        {
            int n = await _socket.SendAsync(data, SocketFlags.None, ct).ConfigureAwait(false);
            if (n <= 0) throw new SocketException((int)SocketError.ConnectionReset);
            data = data[n..];
        }
    }
}
