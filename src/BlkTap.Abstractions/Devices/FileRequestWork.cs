using BlkTap.Storage;

namespace BlkTap;

/// <summary>
/// One request of a <see cref="FileBlockDevice"/> on its lane: served with the blocking device calls on the lane's
/// thread, answered on the loop. Pooled by the device (rented and returned on the loop thread).
/// </summary>
internal sealed class FileRequestWork(FileBlockDevice device) : IStorageLaneWork
{
    public TapRequest? Request;
    private BlkifStatus _status;

    public void Execute()
    {
        try { _status = BlockDeviceHook.Serve(device, Request!); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException) { _status = BlkifStatus.Error; }
    }

    public void Complete()
    {
        var r = Request!;
        Request = null;
        device.Return(this);
        r.Runtime.InjectResponse(r, _status);
    }
}
