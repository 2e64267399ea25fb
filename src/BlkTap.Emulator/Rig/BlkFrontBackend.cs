namespace BlkTap.Emulator;

/// <summary>
/// The interposition placement's backend inside the emulator: requests that pass every hook of a
/// tap are forwarded, through a blkfront in the tap's own domain, over a second ring to a real
/// (emulated) blkback, and its answers injected back. Data is copied through the tap domain's own
/// granted pages, as a tap domain on Xen would have to (it cannot re-grant a guest's pages).
/// </summary>
/// <remarks>Threading: <see cref="Submit"/> runs on the tap loop; completions inject from whatever thread the blkfront completes on.</remarks>
public sealed class BlkFrontBackend(BlkFront front) : ITapBackend
{
    /// <summary>The blkfront that talks to the real backend.</summary>
    public BlkFront Front { get; } = front;

    /// <inheritdoc/>
    public void Submit(TapRequest request) => _ = ForwardAsync(request);

    private async Task ForwardAsync(TapRequest request)
    {
        BlkifStatus status;
        try
        {
            switch (request.Operation)
            {
                case BlkifOperation.Read:
                    {
                        var buffer = new byte[request.ByteCount];
                        status = await Front.ReadAsync(request.Sector, buffer);
                        if (status == BlkifStatus.Okay) request.CopyDataFrom(buffer);
                        break;
                    }
                case BlkifOperation.Write:
                case BlkifOperation.WriteBarrier:
                case BlkifOperation.FlushDiskCache when request.HasData:
                    {
                        var buffer = new byte[request.ByteCount];
                        request.CopyDataTo(buffer);
                        status = await Front.WriteAsync(request.Sector, buffer);
                        if (status == BlkifStatus.Okay && request.Operation != BlkifOperation.Write) status = await Front.FlushAsync();
                        break;
                    }
                case BlkifOperation.FlushDiskCache:
                    status = await Front.FlushAsync();
                    break;
                case BlkifOperation.Discard:
                    status = Front.SupportsDiscard ? await Front.DiscardAsync(request.Sector, request.SectorCount) : BlkifStatus.NotSupported;
                    break;
                default:
                    status = BlkifStatus.NotSupported;
                    break;
            }
        }
        catch (Exception ex) when (ex is BlkFrontException or InvalidOperationException or ObjectDisposedException)
        {
            status = BlkifStatus.Error;
        }
        request.Runtime.InjectResponse(request, status);
    }
}
