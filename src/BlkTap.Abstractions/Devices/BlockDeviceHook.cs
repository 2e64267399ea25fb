namespace BlkTap;

/// <summary>
/// A terminating hook that serves every request from an <see cref="IBlockDevice"/> on the loop thread,
/// and sizes each session from the device at attach. The simplest terminator: the emulator's blkback
/// and the <c>mem</c> tap are this hook over a memory device.
/// </summary>
/// <remarks>Threading: loop thread (as every hook). The device is used synchronously.</remarks>
public sealed class BlockDeviceHook : IRequestHook, IControlHook
{
    private readonly Func<TapSession, IBlockDevice?> _deviceFor;
    private TapSession? _lastSession;
    private IBlockDevice? _lastDevice;

    /// <summary>Serves every session from one device.</summary>
    public BlockDeviceHook(IBlockDevice device) : this(_ => device) { }

    /// <summary>Serves each session from the device <paramref name="deviceFor"/> picks at attach (null: refuse it).</summary>
    public BlockDeviceHook(Func<TapSession, IBlockDevice?> deviceFor) => _deviceFor = deviceFor;

    /// <inheritdoc/>
    public void OnControl(ControlEvent e)
    {
        if (e.Kind == ControlEventKind.Attach)
        {
            var device = _deviceFor(e.Session);
            if (device == null) return;
            e.Session.Items[this] = device;
            e.Session.Sectors = device.SectorCount;
            e.Session.ReadOnly = device.ReadOnly;
            e.Session.SupportsDiscard = device.SupportsDiscard;
            e.Session.SupportsFlush = true;
        }
        else if (e.Kind == ControlEventKind.Disconnect)
        {
            e.Session.Items.Remove(this);
            if (ReferenceEquals(_lastSession, e.Session)) { _lastSession = null; _lastDevice = null; }
        }
    }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        var device = DeviceOf(request.Session);
        request.Status = device is null ? BlkifStatus.Error : Serve(device, request);
        return HookResult.Respond;
    }

    /// <summary>
    /// The device this hook attached to <paramref name="session"/>, or null when it refused the session. The last
    /// session's device is kept, so a run of requests from one session costs no lookup. Loop thread only.
    /// </summary>
    public IBlockDevice? DeviceOf(TapSession session)
    {
        if (ReferenceEquals(session, _lastSession)) return _lastDevice;
        if (!session.Items.TryGetValue(this, out var d)) return null;
        _lastSession = session;
        _lastDevice = (IBlockDevice)d;
        return _lastDevice;
    }

    /// <summary>
    /// The longest run of segments from <paramref name="index"/> that is contiguous both in memory and on disk, as one
    /// segment (a buffer transport's 1 MiB request is 256 page-sized segments in one buffer: one system call, not 256).
    /// </summary>
    public static TapSegment NextRun(ReadOnlySpan<TapSegment> segments, ref int index)
    {
        var first = segments[index++];
        long length = first.Length;
        while (index < segments.Length)
        {
            var next = segments[index];
            if (next.Address != first.Address + (nint)length || next.Sector != first.Sector + (ulong)(length / BlkifConstants.SectorSize)
                || length + next.Length > int.MaxValue) break;
            length += next.Length;
            index++;
        }
        return new TapSegment(first.Address, (int)length, first.Sector);
    }

    /// <summary>Performs <paramref name="request"/> against <paramref name="device"/> and returns the status.</summary>
    public static BlkifStatus Serve(IBlockDevice device, TapRequest request)
    {
        var status = BlkifStatus.Okay;
        switch (request.Operation)
        {
            case BlkifOperation.Read:
                for (int i = 0; i < request.SegmentCount;)
                {
                    var run = NextRun(request.Segments, ref i);
                    status = device.Read(run.Sector, run.Span);
                    if (status != BlkifStatus.Okay) return status;
                }
                return status;
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
            case BlkifOperation.FlushDiskCache:
                for (int i = 0; i < request.SegmentCount;)
                {
                    var run = NextRun(request.Segments, ref i);
                    status = device.Write(run.Sector, run.Span);
                    if (status != BlkifStatus.Okay) return status;
                }
                if (request.Operation != BlkifOperation.Write || request.ForceUnitAccess) status = device.Flush();
                return status;
            case BlkifOperation.Discard:
                return device.SupportsDiscard ? device.Discard(request.Sector, request.SectorCount) : BlkifStatus.NotSupported;
            default:
                return BlkifStatus.NotSupported;
        }
    }
}
