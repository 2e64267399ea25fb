using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using BlkTap.Emulator.Internal;
using Microsoft.Extensions.Logging;

namespace BlkTap.Emulator;

/// <summary>
/// Serves external frontends over the shmring transport (docs/shmring.md): listens on
/// <c>DIR/evtchn</c>, takes one frontend at a time through the handshake, creates the session's shared
/// memory (a sealed memfd whose descriptor goes to the frontend with the answer) and connects a
/// <see cref="RingSession"/> on page 0 to a <see cref="TapRuntime"/>.
/// </summary>
/// <remarks>
/// <para>Threading: construct and call <see cref="Start"/>, <see cref="ServeOneAsync"/> and
/// <see cref="Dispose"/> from one controlling thread, one serve at a time, while another thread runs
/// the runtime's loop (<see cref="TapRuntime.RunAsync"/>). Session work is posted to that loop, whose
/// <see cref="TapRuntime.Loop"/> also watches the event-channel socket; the server has no loop or thread of its own
/// (accept and handshake are awaited on the controlling task, one frontend at a time).</para>
/// <para>The frontend is untrusted: a bad handshake, a short file or a 0-sector disk refuses the
/// connection with a log line and an <c>error REASON</c> line to the frontend; a broken ring closes
/// the session; a request naming a reference outside 1..N is answered ERROR. No exception a frontend
/// can cause escapes <see cref="ServeOneAsync"/>.</para>
/// </remarks>
public sealed class ShmringServer : IDisposable
{
    private readonly TapRuntime _runtime;
    private readonly ShmringServerOptions _options;
    private Socket? _listener;
    private bool _createdSocketFile;
    private volatile Active? _active;

    /// <summary>
    /// Creates a server for <paramref name="directory"/> on <paramref name="runtime"/>. Registers a
    /// control hook on the runtime, so create it before the first request, after the chain.
    /// </summary>
    public ShmringServer(string directory, TapRuntime runtime, ShmringServerOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = Path.GetFullPath(directory);
        _runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        _options = options ?? new ShmringServerOptions();
        _runtime.RegisterControlHook("shmring", Hook.Control(OnControl));
    }

    /// <summary>The served directory.</summary>
    public string Directory { get; }

    /// <summary>The socket path, <c>DIR/evtchn</c>.</summary>
    public string SocketPath => Path.Combine(Directory, ShmringProtocol.EventChannelFileName);

    /// <summary>
    /// Binds and listens on <c>DIR/evtchn</c>. A stale socket left by a dead server is replaced; a
    /// live one, or any other file there, is refused. Throws <see cref="IOException"/> with a clear
    /// message when the directory is missing or the socket cannot be created.
    /// </summary>
    public void Start()
    {
        if (_listener != null) throw new InvalidOperationException("the server is already started");
        if (!System.IO.Directory.Exists(Directory)) throw new IOException($"directory '{Directory}' does not exist");
        var path = SocketPath;
        if (Encoding.UTF8.GetByteCount(path) > 107) throw new IOException($"socket path '{path}' is longer than a Unix socket path may be (107 bytes)");
        if (File.Exists(path) || System.IO.Directory.Exists(path))
        {
            if (!IsSocket(path)) throw new IOException($"'{path}' exists and is not a socket; remove it first");
            using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                try
                {
                    probe.Connect(new UnixDomainSocketEndPoint(path));
                    throw new IOException($"another tap is serving '{path}'");
                }
                catch (SocketException) { /* stale: nobody listens */ }
            }
            File.Delete(path);
        }
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(4);
        }
        catch (SocketException ex)
        {
            listener.Dispose();
            throw new IOException($"cannot listen on '{path}': {ex.Message}", ex);
        }
        _listener = listener;
        _createdSocketFile = true;
    }

    /// <summary>
    /// Accepts the next frontend and serves it until it disconnects, breaks the protocol, or
    /// <paramref name="cancellationToken"/> fires (then the session is closed and the result says
    /// <see cref="ShmringSessionEnd.Stopped"/>). Returns once the shared memory is unmapped.
    /// The memory is created (sealed against resizing, ring initialised) after the whole handshake line
    /// and sent to the frontend with the answer; the ring is read until the session is closed, possibly
    /// after the frontend hung up (docs/shmring.md, "When the server reads the ring").
    /// </summary>
    public async Task<ShmringSessionResult> ServeOneAsync(CancellationToken cancellationToken = default)
    {
        var listener = _listener ?? throw new InvalidOperationException("call Start first");
        Socket connection;
        try { connection = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false); }
        catch (OperationCanceledException) { return new ShmringSessionResult(ShmringSessionEnd.Stopped, "stopped while waiting for a frontend", default, 0, null); }

        var (line, readError) = await ReadHandshakeAsync(connection, cancellationToken).ConfigureAwait(false);
        if (readError != null)
        {
            if (cancellationToken.IsCancellationRequested) { connection.Dispose(); return new ShmringSessionResult(ShmringSessionEnd.Stopped, "stopped during the handshake", default, 0, null); }
            return Refuse(connection, readError, default, 0);
        }
        var parseError = ShmringProtocol.TryParseHandshake(line, out var protocol, out var grantPages);
        if (parseError != null) return Refuse(connection, parseError, default, 0);
        var memory = ShmringMemory.Create($"blktap-shm-{Path.GetFileName(Directory)}", grantPages, out var mapError);
        if (memory == null) return Refuse(connection, mapError!, protocol, grantPages);

        var mapper = new ShmringGrantMapper(memory);
        var session = new RingSession($"shm:{Path.GetFileName(Directory)}", 0, null, mapper);
        var active = new Active(session);
        _active = active;
        _runtime.Post(() => Connect(active, connection, memory, protocol, grantPages));
        try
        {
            using (cancellationToken.Register(() => _runtime.Post(() =>
                   {
                       active.Stopped = true;
                       if (session.IsOpen) _runtime.CloseSession(session, "the tap is stopping");
                       else active.End.TrySetResult(null);
                   })))
            {
                await active.End.Task.ConfigureAwait(false);
            }
        }
        finally
        {
            _active = null;
            await ReleaseAsync(mapper, memory).ConfigureAwait(false);
        }
        if (active.Refusal != null)
        {
            connection.Dispose();
            return new ShmringSessionResult(ShmringSessionEnd.Refused, active.Refusal, protocol, grantPages, null);
        }
        var reason = active.End.Task.Result;
        var end = active.Stopped ? ShmringSessionEnd.Stopped : reason == null ? ShmringSessionEnd.FrontendClosed : ShmringSessionEnd.ProtocolError;
        var st = session.Statistics;
        Log(LogLevel.Information, $"{session.Name}: session ended ({(reason ?? "the frontend disconnected")}): {st.Requests} requests, {st.Errors} errors, {st.Rejected} rejected, {st.BytesRead} bytes read, {st.BytesWritten} bytes written");
        return new ShmringSessionResult(end, reason, protocol, grantPages, session.Statistics);
    }

    // Loop thread.
    private void Connect(Active active, Socket connection, ShmringMemory memory, BlkifProtocol protocol, uint grantPages)
    {
        var session = active.Session;
        try
        {
            if (active.Stopped) { active.End.TrySetResult(null); connection.Dispose(); return; }
            _runtime.AttachSession(session);
            string? problem = null;
            if (!session.IsOpen) problem = "a control hook refused the attach";
            else if (session.Sectors == 0) problem = "no tap of the chain sized the disk (0 sectors)";
            ShmringEventChannel? channel = null;
            if (problem == null)
            {
                channel = new ShmringEventChannel(connection, _runtime.Loop, why => _runtime.CloseSession(session, why), _runtime.Options.TimeProvider);
                problem = session.ConnectRing(memory.Address, ShmringProtocol.PageSize, protocol, channel);
            }
            if (problem != null)
            {
                active.Refusal = problem;
                SendError(connection, problem);
                _runtime.CloseSession(session, null);
                Log(LogLevel.Warning, $"{session.Name}: refused: {problem}");
                active.End.TrySetResult(problem);
                return;
            }
            // NOTE: shmring (docs/shmring.md): the answer line goes out before any event byte, so it is
            // written before the channel joins the loop and before ConnectSession can notify. Its first
            // byte carries the memory's descriptor (SCM_RIGHTS).
            var answer = Encoding.ASCII.GetBytes(ShmringProtocol.FormatConnected(session.Sectors, session.SectorSize, session.Info));
            int sent = memory.SendWithDescriptor(connection, answer);
            if (sent < answer.Length) connection.Send(answer.AsSpan(sent));
            Log(LogLevel.Information, $"{session.Name}: connected ({protocol.ToName()}, {grantPages} grant pages, {session.Sectors} sectors of {session.SectorSize} bytes, info {(uint)session.Info})");
            channel!.Start();
            _runtime.ConnectSession(session);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            // The frontend vanished during the answer: that ends the session like a hangup.
            if (session.IsOpen) _runtime.CloseSession(session, $"the frontend went away during the handshake: {ex.Message}");
            else active.End.TrySetResult($"the frontend went away during the handshake: {ex.Message}");
        }
    }

    private void OnControl(ControlEvent e)
    {
        var active = _active;
        if (e.Kind == ControlEventKind.Disconnect && active != null && ReferenceEquals(e.Session, active.Session))
            active.End.TrySetResult(e.Reason);
    }

    private async Task ReleaseAsync(ShmringGrantMapper mapper, ShmringMemory memory)
    {
        mapper.Revoke();
        // NOTE: requests still stolen or at a backend hold addresses inside the mapping: unmapping under
        // them would let a worker thread fault, so wait for them, and leak the mapping if they never end.
        var sw = Stopwatch.StartNew();
        while (_runtime.InFlight > 0 && sw.Elapsed < _options.DrainTimeout)
            await Task.Delay(5).ConfigureAwait(false);
        if (_runtime.InFlight > 0)
        {
            Log(LogLevel.Warning, $"{_runtime.InFlight} request(s) still inside the chain after {_options.DrainTimeout.TotalSeconds:F0} s; the shared file stays mapped");
            return;
        }
        memory.Dispose();
    }

    private async Task<(byte[] Line, string? Error)> ReadHandshakeAsync(Socket connection, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.HandshakeTimeout);
        var buffer = new byte[ShmringProtocol.MaxHandshakeBytes];
        int length = 0;
        try
        {
            // One byte at a time: bytes after the newline are event notifications and must stay in the socket.
            while (length < buffer.Length)
            {
                int n = await connection.ReceiveAsync(buffer.AsMemory(length, 1), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                if (n == 0) return ([], length == 0 ? "the frontend closed the connection without a handshake" : $"the frontend closed the connection in the middle of its handshake ({length} bytes, no newline)");
                if (buffer[length] == (byte)'\n') return (buffer[..length], null);
                length++;
            }
            return ([], $"no newline within the first {ShmringProtocol.MaxHandshakeBytes} bytes of the handshake");
        }
        catch (OperationCanceledException)
        {
            return ([], $"no handshake line within {_options.HandshakeTimeout.TotalSeconds:0.###} s ({length} bytes received)");
        }
        catch (SocketException ex)
        {
            return ([], $"the handshake failed: {ex.Message}");
        }
    }

    private ShmringSessionResult Refuse(Socket connection, string reason, BlkifProtocol protocol, uint grantPages)
    {
        Log(LogLevel.Warning, $"refused a frontend: {reason}");
        SendError(connection, reason);
        connection.Dispose();
        return new ShmringSessionResult(ShmringSessionEnd.Refused, reason, protocol, grantPages, null);
    }

    private static void SendError(Socket connection, string reason)
    {
        try
        {
            connection.Blocking = false;
            connection.Send(Encoding.ASCII.GetBytes("error " + reason.Replace('\n', ' ') + "\n"), SocketFlags.None, out _);
            connection.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
    }

    private void Log(LogLevel level, string line)
    {
        try { _options.Logger?.Log(level, "{Event}", line); }
        catch (Exception) { /* a broken log sink must not break serving */ }
    }

    private static bool IsSocket(string path)
    {
        if (System.IO.Directory.Exists(path)) return false;
        // NOTE: open(2) of a Unix socket file fails with ENXIO; a regular file, fifo or device opens.
        try { using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete); return false; }
        catch (IOException) { return true; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>Stops listening and removes <c>DIR/evtchn</c>. Call after the last serve has returned.</summary>
    public void Dispose()
    {
        var listener = _listener;
        _listener = null;
        listener?.Dispose();
        if (_createdSocketFile)
        {
            _createdSocketFile = false;
            try { File.Delete(SocketPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private sealed class Active(RingSession session)
    {
        public RingSession Session { get; } = session;
        public TaskCompletionSource<string?> End { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile bool Stopped;
        public string? Refusal;
    }
}
