using BlkTap.Chains;
using BlkTap.Storage;

namespace BlkTap.Examples;

/// <summary>
/// The <c>cow</c> tap. Every session shares one overlay (opened at the first attach, sized to the
/// disk the layer below reports). Reads of sectors the overlay does not hold Pass down; reads it
/// holds entirely are answered from the overlay; mixed reads Pass down and the response hook
/// overlays the held sectors on the base data. Writes, flushes and barriers are answered here.
/// </summary>
/// <remarks>
/// Threading: loop thread only (hook rules). Overlay I/O is synchronous positional I/O on the loop
/// (a first version: simple and ordered); FLUSH, barrier and FUA writes fsync on the loop.
/// </remarks>
public sealed class CowTap : TapBase, IRequestHook, IResponseHook, IControlHook
{
    private const long MergeTag = 1;
    private readonly string _path;
    private readonly int _cluster;
    private readonly bool _readOnlyBase;
    private readonly IStorageProvider? _storage;
    private CowOverlay? _overlay;

    /// <summary>Creates the tap; the overlay is opened or created at the first attach, on <paramref name="storage"/> (null: the OS's files).</summary>
    public CowTap(string overlayPath, int clusterSize, bool readOnlyBase, IStorageProvider? storage = null) : base("cow")
    {
        _storage = storage;
        _path = overlayPath;
        _cluster = clusterSize;
        _readOnlyBase = readOnlyBase;
    }

    /// <summary>The open overlay (null before the first attach or after a failed one). Loop thread.</summary>
    public CowOverlay? Overlay => _overlay;

    /// <inheritdoc/>
    public void OnControl(ControlEvent e)
    {
        if (e.Kind != ControlEventKind.Attach) return;
        var session = e.Session;
        long size = (long)session.Sectors * BlkifConstants.SectorSize;
        if (size == 0)
        {
            session.Runtime.Report(TapDiagnosticLevel.Error, session, "cow: the layer below has no disk (0 sectors); the overlay is not used");
            return;
        }
        try
        {
            _overlay ??= CowOverlay.OpenOrCreate(_path, size, _cluster, _storage);
            if (_overlay.BaseSize != size)
            {
                session.Runtime.Report(TapDiagnosticLevel.Error, session, $"cow: overlay '{_path}' is for a {_overlay.BaseSize}-byte base, this disk is {size} bytes: requests fail");
                return;
            }
        }
        catch (Exception ex) when (ex is CowFormatException or IOException or UnauthorizedAccessException)
        {
            session.Runtime.Report(TapDiagnosticLevel.Error, session, $"cow: {ex.Message}");
            return;
        }
        session.Items[this] = _overlay;
        if (_readOnlyBase) session.ReadOnly = false;
        session.SupportsFlush = true;
        session.SupportsDiscard = false; // the overlay has no "zeroed" state; see docs/cow-format.md
    }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest r)
    {
        if (!r.Session.Items.TryGetValue(this, out var o)) { r.Status = BlkifStatus.Error; return HookResult.Respond; }
        var overlay = (CowOverlay)o;
        try
        {
            switch (r.Operation)
            {
                case BlkifOperation.Read:
                    switch (overlay.Coverage(r.Sector, r.SectorCount))
                    {
                        case CowCoverage.None:
                            return HookResult.Pass;
                        case CowCoverage.All:
                            foreach (var s in r.Segments) overlay.Read(s.Sector, s.Span);
                            r.Status = BlkifStatus.Okay;
                            return HookResult.Respond;
                        default:
                            r.SetTag(this, MergeTag);
                            return HookResult.Pass;
                    }
                case BlkifOperation.Write:
                case BlkifOperation.WriteBarrier:
                    if (r.Session.ReadOnly) { r.Status = BlkifStatus.Error; return HookResult.Respond; }
                    foreach (var s in r.Segments) overlay.Write(s.Sector, s.Span);
                    // NOTE: blkif.h: a WRITE_BARRIER is ordered after everything before it and durable;
                    // writes here complete in order, so a flush after the data gives both.
                    if (r.Operation == BlkifOperation.WriteBarrier || r.ForceUnitAccess) overlay.Flush();
                    r.Status = BlkifStatus.Okay;
                    return HookResult.Respond;
                case BlkifOperation.FlushDiskCache:
                    overlay.Flush();
                    r.Status = BlkifStatus.Okay;
                    return HookResult.Respond;
                default:
                    r.Status = BlkifStatus.NotSupported;
                    return HookResult.Respond;
            }
        }
        catch (Exception ex) when (ex is IOException or ArgumentOutOfRangeException or ObjectDisposedException)
        {
            r.Runtime.Report(TapDiagnosticLevel.Error, r.Session, $"cow: {r}: {ex.Message}");
            r.Status = BlkifStatus.Error;
            return HookResult.Respond;
        }
    }

    /// <inheritdoc/>
    public void OnResponse(TapRequest r)
    {
        if (r.Status != BlkifStatus.Okay || !r.TryGetTag(this, out var tag) || tag != MergeTag) return;
        if (!r.Session.Items.TryGetValue(this, out var o)) { r.Status = BlkifStatus.Error; return; }
        try
        {
            // The layer below filled the whole range from the base; lay the held sectors over it.
            foreach (var s in r.Segments) ((CowOverlay)o).ReadHeld(s.Sector, s.Span);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            r.Runtime.Report(TapDiagnosticLevel.Error, r.Session, $"cow: merging {r}: {ex.Message}");
            r.Status = BlkifStatus.Error;
        }
    }

    /// <summary>Persists the overlay's map and closes it.</summary>
    public override void Dispose()
    {
        _overlay?.Dispose();
        _overlay = null;
        base.Dispose();
    }
}
