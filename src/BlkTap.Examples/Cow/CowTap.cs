using BlkTap.Chains;
using BlkTap.Examples.Internal;
using BlkTap.Storage;

namespace BlkTap.Examples;

/// <summary>
/// The <c>cow</c> tap. Every session shares one overlay (opened at the first attach, sized to the
/// disk the layer below reports). Reads of sectors the overlay does not hold Pass down; reads it
/// holds entirely are answered from the overlay; mixed reads Pass down and the response hook
/// overlays the held sectors on the base data. Writes, flushes and barriers are answered here.
/// </summary>
/// <remarks>
/// Threading: hooks on the loop thread. The overlay's I/O that needs no waiting (page-cache hits, writes to a file in
/// memory) runs on the loop; the rest, and every FLUSH, barrier and FUA write (fsync), runs on the overlay's own worker
/// (<see cref="CowOverlay.Lane"/>), and while that worker holds work every request of the overlay joins it, so the
/// overlay stays serial and in order. The merge of a mixed read (in the response hook) reads the overlay on the loop.
/// </remarks>
public sealed class CowTap : TapBase, IRequestHook, IResponseHook, IControlHook
{
    private const long MergeTag = 1;
    private readonly string _path;
    private readonly int _cluster;
    private readonly bool _readOnlyBase;
    private readonly IStorageProvider? _storage;
    private readonly Stack<CowWork> _works = new();
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
        if (!overlay.Lane.Busy)
        {
            try
            {
                if (TryOnLoop(r, overlay, out var result)) return result;
            }
            catch (Exception ex) when (ex is IOException or ArgumentOutOfRangeException or ObjectDisposedException)
            {
                r.Runtime.Report(TapDiagnosticLevel.Error, r.Session, $"cow: {r}: {ex.Message}");
                r.Status = BlkifStatus.Error;
                return HookResult.Respond;
            }
        }
        // It would wait, or the overlay's worker holds earlier work (the overlay stays serial): the worker takes it.
        var work = _works.Count > 0 ? _works.Pop() : new CowWork(this);
        work.Request = r;
        work.Overlay = overlay;
        overlay.Lane.Submit(r.Runtime.Loop, work);
        return HookResult.Stolen;
    }

    /// <summary>Loop thread: serves <paramref name="r"/> if that needs no waiting; false: hand it to the worker.</summary>
    private bool TryOnLoop(TapRequest r, CowOverlay overlay, out HookResult result)
    {
        result = HookResult.Respond;
        switch (r.Operation)
        {
            case BlkifOperation.Read:
                switch (overlay.Coverage(r.Sector, r.SectorCount))
                {
                    case CowCoverage.None:
                        result = HookResult.Pass;
                        return true;
                    case CowCoverage.All:
                        foreach (var s in r.Segments) if (!overlay.TryReadNoWait(s.Sector, s.Span)) return false;
                        r.Status = BlkifStatus.Okay;
                        return true;
                    default:
                        r.SetTag(this, MergeTag);
                        result = HookResult.Pass;
                        return true;
                }
            case BlkifOperation.Write when !r.ForceUnitAccess:
                if (r.Session.ReadOnly) { r.Status = BlkifStatus.Error; return true; }
                // A segment that would wait sends the whole request to the worker, which writes it all again.
                foreach (var s in r.Segments) if (!overlay.TryWriteNoWait(s.Sector, s.Span)) return false;
                r.Status = BlkifStatus.Okay;
                return true;
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
            case BlkifOperation.FlushDiskCache:
                return false; // fsync: always the worker
            default:
                r.Status = BlkifStatus.NotSupported;
                return true;
        }
    }

    /// <summary>
    /// Worker thread (the overlay's lane, which owns the overlay meanwhile): serves <paramref name="r"/> blocking.
    /// Returns the status, or null when the read must go on down the chain (<paramref name="merge"/>: and be merged).
    /// </summary>
    internal static BlkifStatus? Perform(TapRequest r, CowOverlay overlay, out bool merge)
    {
        merge = false;
        switch (r.Operation)
        {
            case BlkifOperation.Read:
                switch (overlay.Coverage(r.Sector, r.SectorCount))
                {
                    case CowCoverage.None:
                        return null;
                    case CowCoverage.All:
                        foreach (var s in r.Segments) overlay.Read(s.Sector, s.Span);
                        return BlkifStatus.Okay;
                    default:
                        merge = true;
                        return null;
                }
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
                if (r.Session.ReadOnly) return BlkifStatus.Error;
                foreach (var s in r.Segments) overlay.Write(s.Sector, s.Span);
                // NOTE: blkif.h: a WRITE_BARRIER is ordered after everything before it and durable;
                // the overlay's requests complete in order, so a flush after the data gives both.
                if (r.Operation == BlkifOperation.WriteBarrier || r.ForceUnitAccess) overlay.Flush();
                return BlkifStatus.Okay;
            case BlkifOperation.FlushDiskCache:
                overlay.Flush();
                return BlkifStatus.Okay;
            default:
                return BlkifStatus.NotSupported;
        }
    }

    /// <summary>Loop thread: the worker is done with <paramref name="work"/>; answer or pass on its request.</summary>
    internal void Finish(CowWork work, BlkifStatus? status, bool merge, string? error)
    {
        var r = work.Request!;
        work.Request = null;
        work.Overlay = null;
        _works.Push(work);
        if (error != null) r.Runtime.Report(TapDiagnosticLevel.Error, r.Session, $"cow: {r}: {error}");
        if (status is { } st) { r.Runtime.InjectResponse(r, st); return; }
        if (merge) r.SetTag(this, MergeTag);
        r.Runtime.Resume(r);
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
