using System.Net.Sockets;

namespace BlkTap.Nbd;

/// <summary>
/// A blocking convenience wrapper over <see cref="NbdClient"/> for tests and tools: it is its own
/// <see cref="INbdCompletionSink"/> and drives the client with <see cref="Socket.Poll(int, SelectMode)"/> on the
/// calling thread. Use <see cref="Read"/>/<see cref="Write"/>/<see cref="Flush"/>/<see cref="Trim"/> for one
/// request at a time, or <see cref="Submit"/> many and <see cref="WaitAll"/> to keep them in flight together.
/// Threading: not thread-safe; one thread at a time.
/// </summary>
public sealed class NbdBlockingClient : INbdCompletionSink, IDisposable
{
    private readonly Dictionary<ulong, int> _results = new();
    private readonly NbdClient _client;
    private ulong _nextToken = 1UL << 62;

    /// <summary>Connects (see <see cref="NbdClient.Connect"/>).</summary>
    public NbdBlockingClient(NbdUri uri, TimeSpan? handshakeTimeout = null)
    {
        _client = NbdClient.Connect(uri, this, handshakeTimeout);
    }

    /// <summary>The underlying event-loop client.</summary>
    public NbdClient Client => _client;

    /// <summary>Time <see cref="WaitAll"/> and the single-request helpers wait before throwing <see cref="TimeoutException"/>. Default 30 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Results of completed requests not yet taken, by user token.</summary>
    public IReadOnlyDictionary<ulong, int> Results => _results;

    void INbdCompletionSink.OnCompleted(ulong userToken, int nbdError) => _results[userToken] = nbdError;

    /// <summary>Queues a request (see <see cref="NbdClient.Submit"/>); its result appears in <see cref="Results"/>.</summary>
    public void Submit(NbdCommand command, ulong offset, uint length, Memory<byte> buffer, ulong userToken,
        NbdCommandFlags flags = NbdCommandFlags.None) =>
        _client.Submit(command, offset, length, buffer, userToken, flags);

    /// <summary>Drives the client until nothing is in flight.</summary>
    /// <exception cref="TimeoutException">Requests still pending after <see cref="Timeout"/>.</exception>
    public void WaitAll()
    {
        var deadline = Environment.TickCount64 + (long)Timeout.TotalMilliseconds;
        while (_client.InFlight > 0)
        {
            var socket = _client.Socket;
            if (socket == null) return; // broken: every pending request was completed with ConnectionLost
            if (_client.HasPendingSend)
            {
                _client.Flush();
                if (_client.HasPendingSend && _client.Socket is { } s && s.Poll(1000, SelectMode.SelectWrite)) _client.OnWritable();
            }
            if (_client.Socket is { } r && r.Poll(_client.HasPendingSend ? 0 : 10_000, SelectMode.SelectRead)) _client.OnReadable();
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException($"{_client.InFlight} NBD request(s) to {_client.Uri} still pending after {Timeout}");
        }
    }

    /// <summary>Runs one request to completion and returns its NBD error value.</summary>
    public int Run(NbdCommand command, ulong offset, uint length, Memory<byte> buffer, NbdCommandFlags flags = NbdCommandFlags.None)
    {
        ulong token = _nextToken++;
        _client.Submit(command, offset, length, buffer, token, flags);
        WaitAll();
        _results.Remove(token, out int error);
        return error;
    }

    /// <summary>Reads <c>buffer.Length</c> bytes at <paramref name="offset"/>; returns the NBD error value.</summary>
    public int Read(ulong offset, Memory<byte> buffer) => Run(NbdCommand.Read, offset, (uint)buffer.Length, buffer);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> (optionally FUA); returns the NBD error value.</summary>
    public int Write(ulong offset, ReadOnlyMemory<byte> data, bool fua = false) =>
        Run(NbdCommand.Write, offset, (uint)data.Length, System.Runtime.InteropServices.MemoryMarshal.AsMemory(data),
            fua ? NbdCommandFlags.Fua : NbdCommandFlags.None);

    /// <summary>Sends FLUSH; returns the NBD error value.</summary>
    public int Flush() => Run(NbdCommand.Flush, 0, 0, default);

    /// <summary>Sends TRIM; returns the NBD error value.</summary>
    public int Trim(ulong offset, uint length) => Run(NbdCommand.Trim, offset, length, default);

    /// <summary>Reconnects (see <see cref="NbdClient.Reconnect"/>).</summary>
    public void Reconnect() => _client.Reconnect();

    /// <summary>Disconnects and closes.</summary>
    public void Dispose() => _client.Dispose();
}
