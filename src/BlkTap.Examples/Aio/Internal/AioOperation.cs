using BlkTap.Storage;

namespace BlkTap.Examples.Internal;

/// <summary>
/// One request in flight in the aio tap: a thread-pool work item (no closure, reused) that does the
/// positional I/O straight between the request's segment spans and the file, then injects the
/// response. Rented and returned on the loop thread; runs on a pool thread in between.
/// </summary>
internal sealed class AioOperation : IThreadPoolWorkItem
{
    public TapRequest? Request;
    public AioFile? File;
    public int Index;

    public void Execute()
    {
        var r = Request!;
        var f = File!;
        BlkifStatus status;
        try { status = Perform(r, f); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            status = BlkifStatus.Error;
        }
        // The last touch of the request on this thread: after this the loop owns it again.
        r.Runtime.InjectResponse(r, status);
    }

    private static BlkifStatus Perform(TapRequest r, AioFile f)
    {
        switch (r.Operation)
        {
            case BlkifOperation.Read:
                foreach (var s in r.Segments) f.File.ReadFully(s.Span, (long)s.Sector * BlkifConstants.SectorSize);
                return BlkifStatus.Okay;
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
                foreach (var s in r.Segments)
                    f.File.Write(s.Span, (long)s.Sector * BlkifConstants.SectorSize);
                if (r.Operation == BlkifOperation.WriteBarrier || r.ForceUnitAccess) f.Sync();
                return BlkifStatus.Okay;
            case BlkifOperation.FlushDiskCache:
                // NOTE: every write acknowledged before this flush was submitted has finished its
                // pwrite (it is acknowledged only after), so one fsync now covers all of them.
                f.Sync();
                return BlkifStatus.Okay;
            default:
                return BlkifStatus.NotSupported;
        }
    }
}
