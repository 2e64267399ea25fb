using Microsoft.Extensions.Logging;

namespace BlkTap.Nbd;

/// <summary>Settings of an <see cref="NbdServer"/>. Read once at start; do not change afterwards.</summary>
public sealed class NbdServerOptions
{
    /// <summary>Requests one connection may have in flight at once (reading pauses beyond that). Default 64.</summary>
    public int MaxInFlightPerConnection { get; set; } = 64;

    /// <summary>Time a client has to finish the handshake. Default 30 s.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Options a client may send before it is considered abusive and disconnected. Default 1000.</summary>
    public int MaxOptionsPerHandshake { get; set; } = 1000;

    /// <summary>
    /// Where the server logs (category of your choice; a client dropped for garbage or a broken socket is a warning, a
    /// client that hung up mid-request information). Called from any thread; null: nothing is logged.
    /// </summary>
    public ILogger? Logger { get; set; }
}
