using BlkTap.Nbd.Internal;

namespace BlkTap.Nbd;

/// <summary>
/// Serves a tap chain to NBD clients (<c>blktap nbd serve</c>): every NBD connection becomes a
/// <see cref="BufferSession"/> of the same <see cref="TapRuntime"/>, so its requests run through the same hooks as
/// any other frontend's. The export's size, read-only flag, FLUSH and TRIM come from the session as the chain's
/// terminator set them at attach. NBD commands become buffer requests: READ/WRITE (FUA → ForceUnitAccess),
/// FLUSH → FLUSH_DISKCACHE, TRIM → DISCARD, WRITE_ZEROES → writes of zeroes; byte ranges not aligned to 512 are
/// served through a bounce buffer (reads) or a read-modify-write (writes).
/// <para>Threading: thread-safe (the <see cref="NbdServer"/> calls it from many connections). The runtime's loop must
/// be running while connections open, transfer and close.</para>
/// </summary>
public sealed class NbdExportProvider : INbdExportProvider
{
    private readonly TapRuntime _runtime;
    private readonly string? _exportName;
    private readonly bool _readOnly;
    private readonly TimeSpan _loopTimeout;

    /// <summary>Serves the chain registered on <paramref name="runtime"/>.</summary>
    /// <param name="runtime">The tap (its loop must run).</param>
    /// <param name="exportName">The only export name accepted, or null to accept any name (like nbdkit).</param>
    /// <param name="readOnly">Export read-only even when the chain accepts writes.</param>
    /// <param name="loopTimeout">How long to wait for the loop to attach or close a session (default 30 s).</param>
    public NbdExportProvider(TapRuntime runtime, string? exportName = null, bool readOnly = false, TimeSpan? loopTimeout = null)
    {
        _runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        _exportName = string.IsNullOrEmpty(exportName) ? null : exportName;
        _readOnly = readOnly;
        _loopTimeout = loopTimeout ?? TimeSpan.FromSeconds(30);
        ExportNames = [_exportName ?? ""];
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> ExportNames { get; }

    /// <summary>The runtime whose chain is served (an <see cref="NbdServer"/> serves its sockets on this loop when it can watch descriptors).</summary>
    public TapRuntime Runtime => _runtime;

    /// <summary>
    /// Attaches a throw-away session to learn what a client would see (for the "serving ... (SIZE bytes)" line and to
    /// find a broken chain before any client comes), then closes it.
    /// </summary>
    public async Task<NbdExportGeometry> ProbeAsync(CancellationToken cancellationToken = default)
    {
        var session = new BufferSession("nbd-probe");
        await OnLoopAsync(() => _runtime.AttachSession(session), cancellationToken).ConfigureAwait(false);
        var geometry = GeometryOf(session);
        await OnLoopAsync(() => _runtime.CloseSession(session), cancellationToken).ConfigureAwait(false);
        return geometry;
    }

    /// <inheritdoc/>
    public async ValueTask<INbdExportBackend?> OpenAsync(NbdClientInfo client, CancellationToken cancellationToken)
    {
        if (_exportName != null && client.ExportName != _exportName) return null;
        // No image identifier: an NBD client must not be able to pick the file an img tap opens.
        var session = new BufferSession($"nbd{client.ConnectionId}");
        await OnLoopAsync(() =>
        {
            _runtime.AttachSession(session);
            _runtime.ConnectSession(session);
        }, cancellationToken).ConfigureAwait(false);
        return new NbdExportSessionBackend(session, GeometryOf(session));
    }

    /// <inheritdoc/>
    public async ValueTask CloseAsync(INbdExportBackend backend, NbdClientInfo client)
    {
        if (backend is not NbdExportSessionBackend b) return;
        using var cts = new CancellationTokenSource(_loopTimeout);
        try { await OnLoopAsync(() => _runtime.CloseSession(b.Session), cts.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { /* the loop is gone: nothing left to close */ }
    }

    private NbdExportGeometry GeometryOf(BufferSession s) =>
        new(s.Sectors * BlkifConstants.SectorSize, _readOnly || s.ReadOnly, s.SupportsFlush, s.SupportsDiscard && !s.ReadOnly);

    private async Task OnLoopAsync(Action action, CancellationToken ct)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _runtime.Post(() =>
        {
            try { action(); tcs.TrySetResult(); }
            catch (Exception ex) { tcs.TrySetException(ex); }
        });
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_loopTimeout);
        await tcs.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
    }
}
