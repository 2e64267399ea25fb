using System.Net.Sockets;
using BlkTap.Nbd;

namespace BlkTap.Fuzz;

/// <summary>
/// The NBD server's option haggling (and, past it, transmission) fed from the input: one real
/// <see cref="NbdServer"/> on a Unix socket for the process, one connection per input. The input is
/// everything the client sends after the greeting; the server must answer and close within a few
/// seconds and never log an unexpected exception.
/// </summary>
internal static class NbdOptions
{
    private static NbdServer? _server;
    private static string? _path;
    private static readonly List<string> Log = new();

    public static void Run(ReadOnlySpan<byte> input)
    {
        if (_server == null)
        {
            _path = Path.Combine(Path.GetTempPath(), $"blktap-fuzz-nbd-{Environment.ProcessId}.sock");
            File.Delete(_path);
            _server = new NbdServer(new NbdSingleExportProvider(new MemoryNbdExportBackend(1 << 16), "fuzz"),
                new NbdServerOptions { HandshakeTimeout = TimeSpan.FromSeconds(5), Logger = new Collector() });
            _server.ListenUnix(_path);
        }
        lock (Log) Log.Clear();
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            s.Connect(new UnixDomainSocketEndPoint(_path!));
            s.ReceiveTimeout = 10_000;
            s.SendTimeout = 10_000;
            try
            {
                s.Send(input);
                s.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException) { } // the server may close before reading everything (a disconnect it is allowed)
            var buffer = new byte[65536];
            try
            {
                while (s.Receive(buffer) > 0) { }
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                throw new FuzzBugException("the NBD server neither answered nor closed the connection within 10 s");
            }
        }
        // Wait for the connection to finish closing on the server, then look at what it logged.
        for (int i = 0; i < 500 && _server.ActiveConnections > 0; i++) Thread.Sleep(1);
        lock (Log)
            foreach (var line in Log)
                if (line.Contains("unexpected", StringComparison.Ordinal) || line.Contains("threw", StringComparison.Ordinal))
                    throw new FuzzBugException("NBD server: " + line);
    }

    // The server's log lines, kept for the checks above.
    private sealed class Collector : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            lock (NbdOptions.Log) NbdOptions.Log.Add(formatter(state, exception));
        }
    }
}
