using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using BlkTap.Loop;
using Microsoft.Extensions.Logging;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// One accepted client. The handshake runs with blocking socket calls on a thread of its own (it is short, and a
/// socket the .NET async engine has never seen can then be watched by the loop alone); transmission then moves to
/// the server's loop (<see cref="NbdLoopTransmission"/>). <see cref="Run"/>'s task completes once the connection is
/// fully closed: requests finished, final flush done, export closed, socket closed.
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
    private readonly EventLoop _loop;
    private readonly NbdServerCounters _counters;
    private readonly CancellationToken _serverStop;
    private readonly CancellationToken _abort;
    private readonly string _remote;
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SocketReader _reader = null!;
    private DateTime _deadline;
    private INbdExportBackend? _backend;
    private NbdClientInfo? _info;
    private NbdLoopTransmission? _transmission;
    private bool _stopRequested, _aborted;
    private CancellationTokenRegistration _onStop, _onAbort;

    // serverStop: stop reading new requests and options (graceful stop).
    // abort: abandon pending replies (a stop that ran out of patience).
    public NbdServerConnection(Socket socket, long id, INbdExportProvider provider, NbdServerOptions options, EventLoop loop,
        NbdServerCounters counters, CancellationToken serverStop, CancellationToken abort)
    {
        _socket = socket;
        _id = id;
        _provider = provider;
        _options = options;
        _loop = loop;
        _counters = counters;
        _serverStop = serverStop;
        _abort = abort;
        _remote = socket.RemoteEndPoint?.ToString() is { Length: > 0 } r ? r : "unix";
    }

    private void Log(string message) => Log(LogLevel.Warning, message);

    private void Log(LogLevel level, string message) =>
        _options.Logger?.Log(level, "connection {Connection} ({Remote}): {Problem}", _id, _remote, message);

    /// <summary>Starts the connection; the task completes when it is fully closed (it never faults).</summary>
    public Task Run()
    {
        var thread = new Thread(Body) { IsBackground = true, Name = $"nbd-handshake:{_id}" };
        thread.Start();
        return _done.Task;
    }

    private void Body()
    {
        _onStop = _serverStop.Register(static c => ((NbdServerConnection)c!).OnStop(aborted: false), this);
        _onAbort = _abort.Register(static c => ((NbdServerConnection)c!).OnStop(aborted: true), this);
        NbdLoopTransmission? tx = null;
        try
        {
            _deadline = DateTime.UtcNow + _options.HandshakeTimeout;
            _socket.SendTimeout = (int)Math.Clamp(_options.HandshakeTimeout.TotalMilliseconds, 1, int.MaxValue);
            _reader = new SocketReader(_socket, _deadline);
            if (Handshake())
            {
                _socket.Blocking = false;
                // A larger send buffer lets a 1 MiB read reply leave in one or two writes instead of five (capped by
                // net.core.wmem_max; failure is harmless).
                try { _socket.SendBufferSize = Math.Max(_socket.SendBufferSize, 4 << 20); } catch (SocketException) { }
                tx = new NbdLoopTransmission(_loop, (int)_socket.Handle, _backend!, _options.MaxInFlightPerConnection,
                    _reader.Leftover, Log, _abort, _counters);
                lock (_gate)
                {
                    _transmission = tx;
                    bool stop = _stopRequested, abort = _aborted;
                    // Posted under the gate, so a stop arriving later is posted after the start.
                    _loop.Post(() =>
                    {
                        tx.Start();
                        if (abort) tx.Abort();
                        else if (stop) tx.RequestStop();
                    });
                }
            }
        }
        catch (TimeoutException e) { Log(e.Message); }
        catch (EndOfStreamException e) { Log(LogLevel.Information, e.Message); }
        catch (SocketException e) { if (!_serverStop.IsCancellationRequested) Log($"socket error {e.SocketErrorCode}"); }
        catch (ObjectDisposedException) { }
        catch (OperationCanceledException) { }
        catch (NbdProtocolException e) { Log(e.Message); }
        catch (Exception e) { Log($"unexpected {e.GetType().Name}: {e.Message}"); }
        if (tx == null) _ = CloseAsync(null);
        else _ = CloseAsync(tx.Completion);
    }

    private void OnStop(bool aborted)
    {
        NbdLoopTransmission? tx;
        lock (_gate)
        {
            if (aborted) _aborted = true; else _stopRequested = true;
            tx = _transmission;
            if (tx != null)
            {
                if (aborted) _loop.Post(tx.Abort);
                else _loop.Post(tx.RequestStop);
                return;
            }
        }
        // Still negotiating: end the handshake's blocking read.
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
    }

    private async Task CloseAsync(Task? transmission)
    {
        try
        {
            if (transmission != null) await transmission.ConfigureAwait(false);
            if (_backend != null)
            {
                try { await _provider.CloseAsync(_backend, _info!).ConfigureAwait(false); }
                catch (Exception e) { Log($"close threw {e.GetType().Name}: {e.Message}"); }
            }
        }
        finally
        {
            _onStop.Dispose();
            _onAbort.Dispose();
            try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
            _socket.Dispose();
            _done.TrySetResult();
        }
    }

    private void SendAll(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            int n = _socket.Send(data, SocketFlags.None, out var error);
            if (error == SocketError.TimedOut || error == SocketError.WouldBlock) throw new TimeoutException("the client did not read the handshake in time");
            if (error != SocketError.Success) throw new SocketException((int)error);
            if (n <= 0) throw new SocketException((int)SocketError.ConnectionReset);
            data = data[n..];
        }
    }

// ---------------------------------------------------------------- handshake

    private NbdTransmissionFlags FlagsFor(INbdExportBackend b) =>
        NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
        | NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes
        | (b.ReadOnly ? NbdTransmissionFlags.ReadOnly : 0)
        | (b.CanMultiConn ? NbdTransmissionFlags.CanMultiConn : 0);

    /// <summary>Returns true when the client entered transmission with <see cref="_backend"/> open.</summary>
    private bool Handshake()
    {
        byte[] greet = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greet, NbdMagic.NbdMagicValue);
        BinaryPrimitives.WriteUInt64BigEndian(greet.AsSpan(8), NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(greet.AsSpan(16), (ushort)(NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes));
        SendAll(greet);

        byte[] buf = new byte[NbdMagic.OptionHeaderSize];
        if (!_reader.ReadExact(buf.AsSpan(0, 4), true)) return false;
        var clientFlags = (NbdClientFlags)BinaryPrimitives.ReadUInt32BigEndian(buf);
        // NOTE: proto.md "Client flags": the server MUST drop the connection on an unknown client flag.
        if ((clientFlags & ~(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)) != 0)
            throw new NbdProtocolException($"unknown client flags 0x{(uint)clientFlags:x8}; disconnecting");
        bool fixedNewstyle = (clientFlags & NbdClientFlags.FixedNewstyle) != 0;
        bool noZeroes = (clientFlags & NbdClientFlags.NoZeroes) != 0;

        for (int count = 0; ; count++)
        {
            if (count >= _options.MaxOptionsPerHandshake) throw new NbdProtocolException($"more than {_options.MaxOptionsPerHandshake} options; disconnecting");
            if (!_reader.ReadExact(buf, true)) return false;
            ulong magic = BinaryPrimitives.ReadUInt64BigEndian(buf);
            uint option = BinaryPrimitives.ReadUInt32BigEndian(buf.AsSpan(8));
            uint len = BinaryPrimitives.ReadUInt32BigEndian(buf.AsSpan(12));
            if (magic != NbdMagic.IHaveOpt) throw new NbdProtocolException($"bad option magic 0x{magic:x16}; disconnecting");
            if (len > MaxOptionData) throw new NbdProtocolException($"option {option} with {len} bytes of data; disconnecting");
            byte[] data = new byte[len];
            _reader.ReadExact(data, false);

            // NOTE: proto.md "Newstyle negotiation": without fixed newstyle only NBD_OPT_EXPORT_NAME is valid
            // and the server can only close the connection on anything else.
            if (!fixedNewstyle && option != (uint)NbdOption.ExportName)
                throw new NbdProtocolException($"option {option} from a non-fixed-newstyle client; disconnecting");

            switch ((NbdOption)option)
            {
                case NbdOption.ExportName:
                {
                    string name = DecodeName(data);
                    if (!Open(name))
                        throw new NbdProtocolException($"NBD_OPT_EXPORT_NAME for unknown export '{name}'; disconnecting (the only refusal this option allows)");
                    byte[] answer = new byte[10 + (noZeroes ? 0 : NbdMagic.ExportNameZeroPad)];
                    BinaryPrimitives.WriteUInt64BigEndian(answer, _backend!.Size);
                    BinaryPrimitives.WriteUInt16BigEndian(answer.AsSpan(8), (ushort)FlagsFor(_backend));
                    SendAll(answer);
                    return true;
                }
                case NbdOption.Abort:
                    SendOptionReply(option, NbdOptionReplyType.Ack, default);
                    return false;
                case NbdOption.List:
                    if (len != 0)
                    {
                        SendError(option, NbdOptionReplyType.ErrInvalid, "NBD_OPT_LIST takes no data");
                        break;
                    }
                    foreach (var exportName in _provider.ExportNames)
                    {
                        byte[] n = Encoding.UTF8.GetBytes(exportName);
                        byte[] rep = new byte[4 + n.Length];
                        BinaryPrimitives.WriteUInt32BigEndian(rep, (uint)n.Length);
                        n.CopyTo(rep, 4);
                        SendOptionReply(option, NbdOptionReplyType.Server, rep);
                    }
                    SendOptionReply(option, NbdOptionReplyType.Ack, default);
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    if (InfoOrGo(option, data)) return true;
                    break;
                default:
                    // NOTE: proto.md: unknown options (and STRUCTURED_REPLY, STARTTLS, meta contexts, which this
                    // server does not implement) are answered NBD_REP_ERR_UNSUP and negotiation continues.
                    SendError(option, NbdOptionReplyType.ErrUnsup, $"option {option} is not supported by this server");
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
    private bool InfoOrGo(uint option, byte[] data)
    {
        // NOTE: proto.md NBD_OPT_INFO/GO data: u32 name length, name, u16 request count, u16 each.
        if (data.Length < 6) { SendError(option, NbdOptionReplyType.ErrInvalid, "option data shorter than 6 bytes"); return false; }
        uint nameLen = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLen > NbdMagic.MaxString || 4 + nameLen + 2 > data.Length)
        {
            SendError(option, NbdOptionReplyType.ErrInvalid, "export name length does not fit the option data");
            return false;
        }
        int pos = 4 + (int)nameLen;
        int nreq = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(pos));
        if (pos + 2 + 2 * nreq != data.Length)
        {
            SendError(option, NbdOptionReplyType.ErrInvalid, "information request count does not match the option length");
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
        if (!Open(name))
        {
            SendError(option, NbdOptionReplyType.ErrUnknown, $"export '{name}' not found");
            return false;
        }
        var backend = _backend!;
        byte[] exp = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(exp, (ushort)NbdInfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(exp.AsSpan(2), backend.Size);
        BinaryPrimitives.WriteUInt16BigEndian(exp.AsSpan(10), (ushort)FlagsFor(backend));
        SendOptionReply(option, NbdOptionReplyType.Info, exp);
        if (wantName || wantDescription)
        {
            byte[] n = Encoding.UTF8.GetBytes(name);
            byte[] rep = new byte[2 + n.Length];
            BinaryPrimitives.WriteUInt16BigEndian(rep, (ushort)(wantName ? NbdInfoType.Name : NbdInfoType.Description));
            n.CopyTo(rep, 2);
            if (wantName) SendOptionReply(option, NbdOptionReplyType.Info, rep);
        }
        // NOTE: proto.md NBD_INFO_BLOCK_SIZE: min 1 (no alignment needed), preferred 4096, max = 32 MiB payload limit.
        byte[] bs = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(bs, (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(6), 4096);
        BinaryPrimitives.WriteUInt32BigEndian(bs.AsSpan(10), NbdMagic.MaxPayload);
        SendOptionReply(option, NbdOptionReplyType.Info, bs);
        SendOptionReply(option, NbdOptionReplyType.Ack, default);
        if (option == (uint)NbdOption.Go) return true;
        // INFO: the export is not used; close what we opened.
        _backend = null;
        _provider.CloseAsync(backend, _info!).AsTask().GetAwaiter().GetResult();
        return false;
    }

    private bool Open(string name)
    {
        if (_backend != null) { _provider.CloseAsync(_backend, _info!).AsTask().GetAwaiter().GetResult(); _backend = null; }
        var info = new NbdClientInfo(_id, _remote, name);
        var backend = _provider.OpenAsync(info, _serverStop).AsTask().GetAwaiter().GetResult();
        if (backend == null) return false;
        _backend = backend;
        _info = info;
        return true;
    }

    private void SendError(uint option, NbdOptionReplyType type, string message) =>
        SendOptionReply(option, type, Encoding.UTF8.GetBytes(message));

    private void SendOptionReply(uint option, NbdOptionReplyType type, ReadOnlySpan<byte> data)
    {
        byte[] msg = new byte[NbdMagic.OptionReplyHeaderSize + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(msg, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(16), (uint)data.Length);
        data.CopyTo(msg.AsSpan(20));
        SendAll(msg);
    }
}
