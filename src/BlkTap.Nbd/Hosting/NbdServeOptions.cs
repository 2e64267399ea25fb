using System.Net;

namespace BlkTap.Nbd.Hosting;

/// <summary>Settings of an <see cref="NbdServeService"/> (<c>blktap nbd serve</c>'s options). Read at start; do not change afterwards.</summary>
public sealed class NbdServeOptions
{
    /// <summary>Listen on this Unix socket path (replaced if it exists); exactly one of this and <see cref="Port"/>.</summary>
    public string? UnixPath { get; set; }

    /// <summary>Listen on this TCP port (0: any free port); exactly one of this and <see cref="UnixPath"/>.</summary>
    public int? Port { get; set; }

    /// <summary>The TCP address to bind (null: 127.0.0.1).</summary>
    public IPAddress? Bind { get; set; }

    /// <summary>The only export name accepted (null: any name).</summary>
    public string? ExportName { get; set; }

    /// <summary>Export read-only, whatever the chain allows.</summary>
    public bool ReadOnly { get; set; }

    /// <summary>Requests one client may have in flight (default 64).</summary>
    public int MaxInFlight { get; set; } = 64;

    /// <summary>How long a stop waits for clients to take their replies before dropping them (default 20 s).</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(20);
}
