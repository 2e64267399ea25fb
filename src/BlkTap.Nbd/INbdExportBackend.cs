namespace BlkTap.Nbd;

/// <summary>
/// The storage behind one NBD export as seen by one connection of an <see cref="NbdServer"/>. Every method
/// returns an NBD error value (0 = success, else an <see cref="NbdError"/> errno such as EIO) instead of throwing;
/// an exception that escapes is answered as EIO.
/// <para>Threading: a connection keeps many requests in flight, so the methods may be called concurrently
/// (including for overlapping ranges; the NBD client owns ordering of overlapping requests). The server has
/// already checked the range against <see cref="Size"/>, the read-only flag, and the 32 MiB payload limit.</para>
/// <para>Durability: a WRITE is acknowledged to the client when <see cref="WriteAsync"/> completes; a FLUSH reply
/// promises that every write acknowledged before it is persistent, so <see cref="FlushAsync"/> must cover them;
/// <c>fua</c> asks for that one write to be persistent before the call completes.</para>
/// </summary>
public interface INbdExportBackend
{
    /// <summary>Export size in bytes (constant for the life of a connection).</summary>
    ulong Size { get; }

    /// <summary>True to advertise NBD_FLAG_READ_ONLY (writes, trims and zeroing are then refused with EPERM).</summary>
    bool ReadOnly { get; }

    /// <summary>True to advertise NBD_FLAG_CAN_MULTI_CONN (FLUSH on one connection covers writes done on all connections).</summary>
    bool CanMultiConn { get; }

    /// <summary>Fills <paramref name="buffer"/> with the bytes at <paramref name="offset"/>.</summary>
    ValueTask<int> ReadAsync(ulong offset, Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Stores <paramref name="data"/> at <paramref name="offset"/>; with <paramref name="fua"/>, persistently.</summary>
    ValueTask<int> WriteAsync(ulong offset, ReadOnlyMemory<byte> data, bool fua, CancellationToken cancellationToken);

    /// <summary>Makes every completed write persistent.</summary>
    ValueTask<int> FlushAsync(CancellationToken cancellationToken);

    /// <summary>Discards a range (a hint; contents afterwards are unspecified).</summary>
    ValueTask<int> TrimAsync(ulong offset, uint length, bool fua, CancellationToken cancellationToken);

    /// <summary>Makes a range read as zeroes (<paramref name="mayTrim"/> false when NBD_CMD_FLAG_NO_HOLE was set).</summary>
    ValueTask<int> WriteZeroesAsync(ulong offset, uint length, bool fua, bool mayTrim, CancellationToken cancellationToken);
}

/// <summary>Who connected, and which export they asked for. Immutable; thread-safe.</summary>
/// <param name="ConnectionId">Server-unique number of the connection (1, 2, ...).</param>
/// <param name="RemoteEndPoint">The peer's address as text ("unix" for anonymous Unix sockets).</param>
/// <param name="ExportName">The export name the client asked for.</param>
public sealed record NbdClientInfo(long ConnectionId, string RemoteEndPoint, string ExportName);

/// <summary>
/// Decides which backend serves each connection of an <see cref="NbdServer"/>: every negotiation that names an
/// export opens it (so each connection can become its own frontend session), and every opened backend is closed
/// exactly once. Called concurrently from many connections; implementations must be thread-safe.
/// </summary>
public interface INbdExportProvider
{
    /// <summary>Names listed by NBD_OPT_LIST.</summary>
    IReadOnlyList<string> ExportNames { get; }

    /// <summary>Opens the export a client asked for, or returns null when there is no such export (the client gets NBD_REP_ERR_UNKNOWN).</summary>
    ValueTask<INbdExportBackend?> OpenAsync(NbdClientInfo client, CancellationToken cancellationToken);

    /// <summary>The connection using <paramref name="backend"/> ended (after its in-flight requests finished and a final flush).</summary>
    ValueTask CloseAsync(INbdExportBackend backend, NbdClientInfo client);
}

/// <summary>
/// One backend shared by every connection. With <c>exportName</c> null any requested name is accepted (like nbdkit);
/// otherwise only that name. Thread-safe.
/// </summary>
public sealed class NbdSingleExportProvider : INbdExportProvider
{
    private readonly INbdExportBackend _backend;
    private readonly string? _name;

    /// <summary>Serves <paramref name="backend"/> under <paramref name="exportName"/> (null: under any name).</summary>
    public NbdSingleExportProvider(INbdExportBackend backend, string? exportName = null)
    {
        _backend = backend ?? throw new ArgumentNullException(nameof(backend));
        _name = exportName;
        ExportNames = [exportName ?? ""];
    }

    /// <inheritdoc />
    public IReadOnlyList<string> ExportNames { get; }

    /// <inheritdoc />
    public ValueTask<INbdExportBackend?> OpenAsync(NbdClientInfo client, CancellationToken cancellationToken) =>
        ValueTask.FromResult(_name == null || _name == client.ExportName ? _backend : null);

    /// <inheritdoc />
    public ValueTask CloseAsync(INbdExportBackend backend, NbdClientInfo client) => ValueTask.CompletedTask;
}
