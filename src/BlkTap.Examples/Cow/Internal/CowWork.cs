namespace BlkTap.Examples.Internal;

/// <summary>
/// One cow request on its overlay's lane: served blocking on the lane's thread (<see cref="CowTap.Perform"/>), then
/// answered or passed on down the chain on the loop. Pooled by the tap (rented and returned on the loop thread).
/// </summary>
internal sealed class CowWork(CowTap tap) : Storage.IStorageLaneWork
{
    public TapRequest? Request;
    public CowOverlay? Overlay;
    private BlkifStatus? _status;
    private bool _merge;
    private string? _error;

    public void Execute()
    {
        _error = null;
        try { _status = CowTap.Perform(Request!, Overlay!, out _merge); }
        catch (Exception ex) when (ex is IOException or ArgumentOutOfRangeException or ObjectDisposedException or UnauthorizedAccessException)
        {
            _status = BlkifStatus.Error;
            _merge = false;
            _error = ex.Message;
        }
    }

    public void Complete() => tap.Finish(this, _status, _merge, _error);
}
