namespace BlkTap.Emulator;

public sealed partial class BlkFront
{
    // Disconnecting, breaking on a protocol error, and giving back the ring, pages and event channel. Scheduler only.

    private void StartDisconnect()
    {
        switch (_phase)
        {
            case Phase.Closed:
                _disconnected.TrySetResult();
                return;
            case Phase.Connected:
            case Phase.Initialised:
                _phase = Phase.Closing;
                WriteState(XenbusState.Closing);
                OnBackendChanged(BackendPath + "/state");
                return;
            default:
                Teardown("the frontend disconnected");
                _phase = Phase.Closed;
                WriteState(XenbusState.Closed);
                _disconnected.TrySetResult();
                return;
        }
    }

    private void FinishDisconnect()
    {
        Teardown("the frontend disconnected");
        _phase = Phase.Closed;
        WriteState(XenbusState.Closed);
        _disconnected.TrySetResult();
    }

    /// <summary>The backend broke the protocol: fail everything, stay broken, tell the backend. Scheduler only.</summary>
    private void Break(string reason)
    {
        if (_phase is Phase.Broken or Phase.Closed) return;
        _brokenReason = reason;
        _phase = Phase.Broken;
        var error = new BlkFrontException($"{FrontendPath} is broken: {reason}");
        FailAll(error);
        _connected.TrySetException(error);
        if (!Domain.IsAlive) return; // a dead guest writes nothing more to xenstore
        _store.Write(FrontendPath + "/error", reason);
        WriteState(XenbusState.Closing);
    }

    /// <summary>Fails every call and gives back every resource. Scheduler only.</summary>
    private void Teardown(string reason)
    {
        var error = new BlkFrontException($"{FrontendPath}: {reason}");
        FailAll(error);
        _connected.TrySetException(error);
        _backendWatch?.Dispose();
        _backendWatch = null;
        foreach (var queue in _queues)
        {
            queue.EventChannel.Dispose();
            if (queue.RingBase != 0)
            {
                foreach (var gref in queue.RingRefs)
                    if (Domain.Grants.IsGranted(gref)) Domain.Grants.EndAccess(gref);
                if (Domain.IsAlive) Domain.FreePages(queue.RingBase); // revokes what is still mapped; freed at the last unmap
                queue.RingBase = 0;
            }
            // Persistent grants: revoked and freed; a page the backend still maps is freed at its last unmap.
            foreach (var (page, gref) in queue.AllGrants)
            {
                if (!Domain.IsAlive) break;
                if (Domain.Grants.IsGranted(gref)) Domain.Grants.EndAccess(gref);
                Domain.FreePages(page);
            }
            queue.AllGrants.Clear();
            queue.FreeGrants.Clear();
        }
        while (_pagePool.Count > 0)
        {
            var page = _pagePool.Pop();
            if (Domain.IsAlive) Domain.FreePages(page);
        }
    }

    private void FailAll(Exception error)
    {
        foreach (var queue in _queues)
        {
            var shadows = queue.Shadows;
            for (int id = 0; id < shadows.Length; id++)
            {
                var shadow = shadows[id];
                if (!shadow.InUse) continue;
                var op = shadow.Operation!;
                if (Domain.IsAlive)
                {
                    for (int s = 0; s < shadow.SegmentCount; s++)
                    {
                        if (shadow.Persistent[s]) queue.FreeGrants.Push((shadow.Pages[s], shadow.GrantRefs[s]));
                        else if (Domain.Grants.IsGranted(shadow.GrantRefs[s]) && Domain.Grants.EndAccess(shadow.GrantRefs[s])) _pagePool.Push(shadow.Pages[s]);
                        else Domain.FreePages(shadow.Pages[s]);
                    }
                }
                shadow.SegmentCount = 0;
                shadow.Operation = null;
                queue.FreeIds.Push(id);
                Interlocked.Decrement(ref _inFlight);
                op.Fail(error);
            }
        }
        while (_waiting.Count > 0) _waiting.Dequeue().Fail(error);
        Volatile.Write(ref _waitingCount, 0);
        FailIncoming(error);
    }

    private void FailIncoming(Exception? error = null)
    {
        while (_incoming.TryDequeue(out var op))
            op.Fail(error ?? new BlkFrontException(_phase == Phase.Broken ? $"{FrontendPath} is broken: {_brokenReason}" : $"{FrontendPath} is not connected"));
    }

    private void WriteState(XenbusState state)
    {
        State = state;
        if (Domain.IsAlive) XenbusDevices.WriteState(_store, FrontendPath, state);
    }
}
