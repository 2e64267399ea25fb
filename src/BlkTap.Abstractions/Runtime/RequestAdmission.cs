namespace BlkTap;

/// <summary>
/// The one admission sequence every transport runs between renting a request (<see cref="TapRuntime.RentRequest(TapSession, ulong, BlkifOperation, ulong)"/>)
/// and submitting it (<see cref="TapRuntime.Submit"/>): validate what the frontend sent against the session (shape,
/// range, read-only), check the operation against the session's features (discard, flush), mark a discard's range
/// and a write's force-unit-access, then let the transport add its data segments with <see cref="AddSegment"/>.
/// A transport that gets a status other than <see cref="BlkifStatus.Okay"/> answers the request with it
/// (<see cref="TapRuntime.Reject"/>) and adds nothing.
/// </summary>
/// <remarks>
/// Used by the shared-ring transport (<see cref="RingSession"/>: Xen's blkback protocol, the emulator, shmring), the
/// buffer transport (<see cref="BufferSession"/>: the NBD server) and the 2005 <c>/dev/blktap</c> device. Threading:
/// loop thread, on a request the caller has rented and not yet submitted.
/// </remarks>
public static class RequestAdmission
{
    /// <summary>
    /// Admits a blkif request read from a shared ring (copied out of shared memory first: it is not read again).
    /// Indirect requests are checked here up to their header; the transport reads and checks the indirect pages.
    /// </summary>
    /// <param name="request">The rented request for <paramref name="wire"/>.</param>
    /// <param name="wire">The frontend's request, as copied from the ring.</param>
    /// <param name="maxIndirectSegments">The most indirect segments the transport advertised (0: no indirect requests).</param>
    /// <returns><see cref="BlkifStatus.Okay"/> to go on, otherwise the status to answer with.</returns>
    public static BlkifStatus Admit(TapRequest request, in BlkifRequest wire, int maxIndirectSegments)
    {
        var session = request.Session;
        var fault = BlkifValidation.Validate(in wire, session.Sectors, session.ReadOnly, maxIndirectSegments);
        if (fault != RequestFault.None) return BlkifValidation.StatusFor(fault);
        var op = wire.Operation == BlkifOperation.Indirect ? wire.IndirectOperation : wire.Operation;
        if (!Supported(session, op)) return BlkifStatus.NotSupported;
        if (op == BlkifOperation.Discard) request.SetDiscard(wire.DiscardSectorCount, wire.DiscardFlags);
        // NOTE: blkif.h: BLKIF_OP_WRITE_BARRIER orders and makes durable the write it carries; the runtime models it
        // as a write with force-unit-access.
        else if (op == BlkifOperation.WriteBarrier) request.SetForceUnitAccess(true);
        return BlkifStatus.Okay;
    }

    /// <summary>
    /// Admits a request whose data is one buffer the transport owns (<see cref="BufferSession"/>): a read or write of
    /// <paramref name="length"/> bytes at <paramref name="sector"/>, a flush (length 0, or a write with data and
    /// <paramref name="forceUnitAccess"/>), or a discard of <paramref name="discardSectors"/>.
    /// </summary>
    /// <returns><see cref="BlkifStatus.Okay"/> to go on, otherwise the status to answer with.</returns>
    public static BlkifStatus Admit(TapRequest request, BlkifOperation operation, ulong sector, long length, bool hasData,
        ulong discardSectors, bool forceUnitAccess)
    {
        var session = request.Session;
        switch (operation)
        {
            case BlkifOperation.Read:
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
            case BlkifOperation.FlushDiskCache:
                if (length < 0 || length % BlkifConstants.SectorSize != 0 || (length > 0 && !hasData)) return BlkifStatus.Error;
                if (length == 0 && operation is BlkifOperation.Read or BlkifOperation.Write) return BlkifStatus.Error;
                if (session.ReadOnly && operation != BlkifOperation.Read) return BlkifStatus.Error;
                if (!Supported(session, operation)) return BlkifStatus.NotSupported;
                if (!BlkifValidation.InRange(sector, (ulong)length / BlkifConstants.SectorSize, session.Sectors)) return BlkifStatus.Error;
                request.SetForceUnitAccess(forceUnitAccess);
                return BlkifStatus.Okay;
            case BlkifOperation.Discard:
                if (!Supported(session, operation)) return BlkifStatus.NotSupported;
                if (session.ReadOnly) return BlkifStatus.Error;
                if (!BlkifValidation.InRange(sector, discardSectors, session.Sectors)) return BlkifStatus.Error;
                request.SetDiscard(discardSectors, 0);
                return BlkifStatus.Okay;
            default:
                return BlkifStatus.NotSupported;
        }
    }

    /// <summary>Adds a data segment (<paramref name="length"/> bytes at <paramref name="address"/>) to an admitted request.</summary>
    public static void AddSegment(TapRequest request, nint address, int length) => request.AddSegment(address, length);

    /// <summary>Whether the session offers <paramref name="operation"/> (discard and flush are features a session may lack).</summary>
    public static bool Supported(TapSession session, BlkifOperation operation) => operation switch
    {
        BlkifOperation.Discard => session.SupportsDiscard,
        BlkifOperation.FlushDiskCache => session.SupportsFlush,
        _ => true,
    };
}
