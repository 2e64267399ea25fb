using Microsoft.Extensions.Logging;

namespace BlkTap.Emulator;

/// <summary>Settings of a <see cref="ShmringServer"/>.</summary>
public sealed class ShmringServerOptions
{
    /// <summary>How long a connected frontend has to send its handshake line (default 10 s).</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long to wait, after a session ends, for requests still inside the chain (stolen or at a
    /// backend) before the shared file is unmapped (default 30 s). If they do not finish, the mapping
    /// is left in place rather than pulled from under them.
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Where the server logs: a frontend connected (information), was refused (warning), ended with its statistics (information). Called from the serving thread or the tap's loop. Null: nothing is logged.
    /// </summary>
    public ILogger? Logger { get; set; }
}

/// <summary>How an shmring session ended.</summary>
public enum ShmringSessionEnd
{
    /// <summary>The frontend closed its connection (the normal end).</summary>
    FrontendClosed,
    /// <summary>The handshake was refused (bad line, bad file, no disk); no session was connected.</summary>
    Refused,
    /// <summary>The session was closed because the frontend broke the ring protocol (or the transport failed).</summary>
    ProtocolError,
    /// <summary>The server was cancelled (SIGINT/SIGTERM) and closed the session.</summary>
    Stopped,
}

/// <summary>The outcome of one <see cref="ShmringServer.ServeOneAsync"/>.</summary>
/// <param name="End">How the session ended.</param>
/// <param name="Reason">Why, when it did not end normally.</param>
/// <param name="Protocol">The ABI the frontend declared (meaningful once the handshake parsed).</param>
/// <param name="GrantPages">N from the handshake (0 if it did not parse).</param>
/// <param name="Statistics">The session's counters, or null if no session was attached.</param>
public sealed record ShmringSessionResult(ShmringSessionEnd End, string? Reason, BlkifProtocol Protocol, uint GrantPages, SessionStatistics? Statistics);
