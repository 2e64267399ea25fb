namespace BlkTap.Emulator.Hosting;

/// <summary>Settings of a <see cref="ShmringServeService"/> (<c>blktap shm serve</c>'s options). Read at start; do not change afterwards.</summary>
public sealed class ShmringServeOptions
{
    /// <summary>The directory holding the frontend's <c>mem</c> file and the <c>evtchn</c> socket (required).</summary>
    public string Directory { get; set; } = "";

    /// <summary>Serve the next frontend after a session ends, until the host stops; otherwise stop the host after one session.</summary>
    public bool KeepServing { get; set; }

    /// <summary>Time a frontend has to send its handshake line (default 10 s).</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Called with each session's outcome as it ends (not for a serve stopped before any frontend came). Called from the serving thread; may be null.</summary>
    public Action<ShmringSessionResult>? SessionEnded { get; set; }
}
