using System.Globalization;
using BlkTap.Emulator.Internal;

namespace BlkTap.Emulator;

public sealed partial class BlkFront
{
    // The xenbus handshake (xen-blkfront.c talk_to_blkback, blkback_changed): the backend state watch, the ring and
    // event channel, and the backend's disk parameters. Scheduler only.

    private void StartConnect()
    {
        _phase = Phase.WaitingForBackend;
        WriteState(XenbusState.Initialising);
        _backendWatch = _store.Watch(BackendPath + "/state", OnBackendChanged);
    }

    private void OnBackendChanged(string path)
    {
        var backend = XenbusDevices.ReadState(_store, BackendPath);
        switch (_phase)
        {
            case Phase.WaitingForBackend:
                if (backend == XenbusState.InitWait) TalkToBackend();
                else if (backend is XenbusState.Closing or XenbusState.Closed) Break($"the backend went to {backend} before connecting{BackendReason()}");
                break;
            case Phase.Initialised:
                if (backend == XenbusState.Connected) FinishConnect();
                else if (backend is XenbusState.Closing or XenbusState.Closed) Break($"the backend went to {backend} before connecting{BackendReason()}");
                break;
            case Phase.Connected:
                if (backend is XenbusState.Closing or XenbusState.Closed)
                {
                    // NOTE: blkback_changed(): a backend that closes takes the device away (blkfront_closing).
                    Teardown($"the backend closed the device{BackendReason()}");
                    _phase = Phase.Closed;
                    WriteState(XenbusState.Closed);
                    _disconnected.TrySetResult();
                }
                break;
            case Phase.Closing:
                if (backend is XenbusState.Closing or XenbusState.Closed or XenbusState.Unknown) FinishDisconnect();
                break;
        }
    }

    /// <summary>
    /// ": " and the backend's <c>hotplug-error</c> (why it closed the device), or "" when it wrote none.
    /// Scheduler only.
    /// </summary>
    private string BackendReason()
    {
        var reason = _store.Read(BackendPath + "/hotplug-error");
        return string.IsNullOrEmpty(reason) ? "" : ": " + reason;
    }

    private void TalkToBackend()
    {
        try
        {
            var inv = CultureInfo.InvariantCulture;
            // NOTE: blkif.h "max-ring-page-order": absent means a single-page ring with "ring-ref".
            ulong offered = XenbusDevices.ReadUnsigned(_store, BackendPath + "/max-ring-page-order", 0);
            int order = (int)Math.Min(Math.Min((ulong)_options.MaxRingPageOrder, offered), BlkifConstants.MaxRingPageOrder);
            int pages = 1 << order;
            int bytes = SharedRingLayout.BytesForOrder(order);
            _ringBase = Domain.AllocatePages(pages);
            _ringRefs = new uint[pages];
            for (int i = 0; i < pages; i++)
                _ringRefs[i] = Domain.Grants.GrantAccess(BackendDomainId, _ringBase + i * BlkifConstants.PageSize, readOnly: false);
            _ring = new FrontRing(_ringBase, bytes, Layout, initialiseShared: true);
            RingPageOrder = order;
            _shadows = new BlkFrontShadow[_ring.Size];
            for (int i = _shadows.Length - 1; i >= 0; i--)
            {
                _shadows[i] = new BlkFrontShadow();
                _freeIds.Push(i);
            }
            var (port, channel) = Domain.EventChannels.AllocUnbound(BackendDomainId);
            _eventChannel = channel;
            channel.SetHandler(_onEvent);
            if (pages == 1) _store.Write(FrontendPath + "/ring-ref", _ringRefs[0].ToString(inv));
            else
            {
                for (int i = 0; i < pages; i++) _store.Write(FrontendPath + "/ring-ref" + i.ToString(inv), _ringRefs[i].ToString(inv));
                _store.Write(FrontendPath + "/ring-page-order", order.ToString(inv));
            }
            _store.Write(FrontendPath + "/event-channel", port.ToString(inv));
            _store.Write(FrontendPath + "/protocol", Protocol.ToName());
            _phase = Phase.Initialised;
            WriteState(XenbusState.Initialised);
            // The backend may already be Connected (its watch fired before ours was processed).
            if (XenbusDevices.ReadState(_store, BackendPath) == XenbusState.Connected) FinishConnect();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            Break($"the handshake failed: {e.Message}");
        }
    }

    private void FinishConnect()
    {
        ulong sectors = XenbusDevices.ReadUnsigned(_store, BackendPath + "/sectors", ulong.MaxValue);
        if (sectors == ulong.MaxValue)
        {
            Break($"{BackendPath}/sectors is missing or not a number");
            return;
        }
        Sectors = sectors;
        SectorSize = (uint)Math.Min(XenbusDevices.ReadUnsigned(_store, BackendPath + "/sector-size", BlkifConstants.SectorSize), uint.MaxValue);
        Info = (VdiskInfo)(uint)Math.Min(XenbusDevices.ReadUnsigned(_store, BackendPath + "/info", 0), uint.MaxValue);
        SupportsFlush = XenbusDevices.ReadUnsigned(_store, BackendPath + "/feature-flush-cache", 0) != 0;
        SupportsDiscard = XenbusDevices.ReadUnsigned(_store, BackendPath + "/feature-discard", 0) != 0;
        MaxIndirectSegments = (uint)Math.Min(XenbusDevices.ReadUnsigned(_store, BackendPath + "/feature-max-indirect-segments", 0), uint.MaxValue);
        _phase = Phase.Connected;
        WriteState(XenbusState.Connected);
        _connected.TrySetResult();
    }
}
