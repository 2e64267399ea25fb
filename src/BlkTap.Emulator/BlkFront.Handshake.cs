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
            // NOTE: blkif.h multi-queue: the backend's multi-queue-max-queues (absent: 1); xen-blkfront negotiate_mq
            // uses min(that, its max_queues parameter).
            ulong offeredQueues = XenbusDevices.ReadUnsigned(_store, BackendPath + "/multi-queue-max-queues", 1);
            int count = (int)Math.Max(1, Math.Min((ulong)_options.MaxQueues, offeredQueues));
            int pages = 1 << order;
            RingPageOrder = order;
            var queues = new BlkFrontQueue[count];
            for (int q = 0; q < count; q++)
            {
                queues[q] = SetUpQueue(q, order);
                _queues = queues[..(q + 1)]; // what is set up so far, for Teardown should the next one fail
            }
            foreach (var queue in queues)
            {
                var dir = count == 1 ? FrontendPath : FrontendPath + "/queue-" + queue.Index.ToString(inv);
                if (pages == 1) _store.Write(dir + "/ring-ref", queue.RingRefs[0].ToString(inv));
                else
                    for (int i = 0; i < pages; i++) _store.Write(dir + "/ring-ref" + i.ToString(inv), queue.RingRefs[i].ToString(inv));
                _store.Write(dir + "/event-channel", queue.Port.ToString(inv));
            }
            // NOTE: blkif.h: with N > 1 queues the frontend writes multi-queue-num-queues and no top-level ring-ref or
            // event-channel; ring-page-order stays at the top for every queue (xen-blkfront talk_to_blkback).
            if (count > 1) _store.Write(FrontendPath + "/multi-queue-num-queues", count.ToString(inv));
            if (pages > 1) _store.Write(FrontendPath + "/ring-page-order", order.ToString(inv));
            _store.Write(FrontendPath + "/protocol", Protocol.ToName());
            // NOTE: blkif.h "feature-persistent" (frontend side): xen-blkfront writes its own parameter here before
            // Initialised and uses persistent grants only if the backend's node says 1 too (read at connect).
            _store.Write(FrontendPath + "/feature-persistent", _options.PersistentGrants ? "1" : "0");
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

    /// <summary>Allocates, grants and initialises one ring and its event channel. Scheduler only.</summary>
    private BlkFrontQueue SetUpQueue(int index, int order)
    {
        int pages = 1 << order;
        var ringBase = Domain.AllocatePages(pages);
        var refs = new uint[pages];
        for (int i = 0; i < pages; i++)
            refs[i] = Domain.Grants.GrantAccess(BackendDomainId, ringBase + i * BlkifConstants.PageSize, readOnly: false);
        var ring = new FrontRing(ringBase, SharedRingLayout.BytesForOrder(order), Layout, initialiseShared: true);
        var (port, channel) = Domain.EventChannels.AllocUnbound(BackendDomainId);
        var queue = new BlkFrontQueue(index, ring, ringBase, refs, channel, port);
        queue.OnEvent = () => OnEvent(queue);
        channel.SetHandler(queue.OnEvent);
        return queue;
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
        // NOTE: xen-blkfront blkfront_gather_backend_features: persistent grants iff its own parameter and the
        // backend's feature-persistent (absent: 0).
        _persistent = _options.PersistentGrants && XenbusDevices.ReadUnsigned(_store, BackendPath + "/feature-persistent", 0) != 0;
        _phase = Phase.Connected;
        WriteState(XenbusState.Connected);
        _connected.TrySetResult();
    }
}
