using BlkTap.Chains;

namespace BlkTap.Nbd;

/// <summary>
/// <c>nbd</c>: terminates on a remote NBD export (the 2005 blktap's blkgnbd, on today's fixed-newstyle protocol).
/// Options: <c>uri=NBD-URI</c> (<c>nbd://host:port/export</c> or <c>nbd+unix:///export?socket=PATH</c>),
/// <c>connections=1</c>, <c>timeout=SECONDS</c> (handshake timeout, default 10).
/// </summary>
public sealed class NbdTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "nbd";
    /// <inheritdoc/>
    public string Description => "remote NBD export (the 2005 blktap's blkgnbd): nbd://host:port/export or nbd+unix:///export?socket=PATH";
    /// <inheritdoc/>
    public bool IsTerminator => true;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("uri", "the NBD server: nbd://host[:port]/export or nbd+unix:///export?socket=PATH", Required: true),
        new("connections", "NBD connections to open (only 1 is supported today; default 1)"),
        new("timeout", "seconds the connect + handshake may take before the attach fails (default 10)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var text = spec.Require("uri");
        if (!NbdUri.TryParse(text, out var uri, out var error))
            throw new ChainSpecException($"tap 'nbd': uri={text}: {error}");
        long connections = spec.GetInt64("connections", 1);
        if (connections != 1)
            throw new ChainSpecException($"tap 'nbd': connections={connections}: only 1 connection is supported");
        double timeout = spec.GetDouble("timeout", 10);
        if (timeout is <= 0 or > 3600)
            throw new ChainSpecException($"tap 'nbd': timeout={spec.Get("timeout")}: must be between 0 and 3600 seconds");
        return new NbdTap(uri!, TimeSpan.FromSeconds(timeout));
    }
}
