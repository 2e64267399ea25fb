namespace BlkTap;

public sealed partial class TapRuntime
{
    // Requests: rented from the pool by a transport, run through the request hooks to the backend, and answered
    // through the response hooks back to their session. Loop thread.

    /// <summary>Loop thread (transports): a request context from the pool, reset for <paramref name="session"/>.</summary>
    public TapRequest RentRequest(TapSession session, ulong id, BlkifOperation operation, ulong sector) =>
        RentRequest(session, id, operation, operation, sector);

    internal TapRequest RentRequest(TapSession session, ulong id, BlkifOperation operation, BlkifOperation wireOperation, ulong sector)
    {
        var r = _pool.Count > 0 ? _pool.Pop() : new TapRequest(this);
        r.Reset(session, id, operation, wireOperation, sector, _loop.PassTimestamp);
        r.State = RequestState.InHooks;
        return r;
    }

    // Between RentRequest and Submit a transport runs RequestAdmission (validation, features, discard and FUA marks,
    // segments): the one admission sequence every transport shares.

    /// <summary>Loop thread (transports): returns an unsubmitted request to the pool.</summary>
    public void ReturnUnsubmitted(TapRequest request)
    {
        request.State = RequestState.Free;
        request.Release();
        _pool.Push(request);
    }

    /// <summary>Loop thread (transports): runs a rented, filled request through the request hooks.</summary>
    public void Submit(TapRequest request)
    {
        // Only the loop thread changes the count; other threads read it (InFlight), so no locked instruction is needed.
        Volatile.Write(ref _inFlight, _inFlight + 1);
        request.NextHook = 0;
        Dispatch(request);
    }

    /// <summary>
    /// Loop thread (transports): answers a request without showing it to any hook (a malformed request,
    /// a request to a closed disk). Response hooks still see it.
    /// </summary>
    public void Reject(TapRequest request, BlkifStatus status)
    {
        Volatile.Write(ref _inFlight, _inFlight + 1);
        request.Session.Statistics.Rejected++;
        request.Session.Metrics?.Rejected();
        request.Status = status;
        Finish(request);
    }

    private void Dispatch(TapRequest request)
    {
        var chain = _requestChain;
        while (request.NextHook < chain.Length)
        {
            var hook = chain[request.NextHook++];
            HookResult result;
            try { result = hook.OnRequest(request); }
            catch (Exception ex)
            {
                Report(TapDiagnosticLevel.Error, request.Session, $"request hook {_requestHooks[request.NextHook - 1].Name} threw on {request}", ex);
                request.Status = BlkifStatus.Error;
                result = HookResult.Respond;
            }
            if (result != HookResult.Stolen && request.State is RequestState.EarlyInject or RequestState.EarlyResume)
            {
                Report(TapDiagnosticLevel.Error, request.Session, $"request hook {_requestHooks[request.NextHook - 1].Name} injected or resumed {request} but returned {result}, not Stolen; the injection is ignored");
                request.State = RequestState.InHooks;
            }
            switch (result)
            {
                case HookResult.Pass:
                    continue;
                case HookResult.Respond:
                    Finish(request);
                    return;
                case HookResult.Stolen:
                    if (Interlocked.CompareExchange(ref request.State, RequestState.Stolen, RequestState.InHooks) == RequestState.InHooks) return;
                    if (request.State == RequestState.EarlyInject)
                    {
                        request.State = RequestState.Completing;
                        request.Status = request.PendingStatus;
                        Finish(request);
                        return;
                    }
                    // EarlyResume: go straight on to the next hook.
                    request.State = RequestState.InHooks;
                    continue;
                default:
                    Report(TapDiagnosticLevel.Error, request.Session, $"request hook returned {(int)result}, not a HookResult");
                    request.Status = BlkifStatus.Error;
                    Finish(request);
                    return;
            }
        }
        var backend = Backend;
        if (backend == null)
        {
            request.Status = BlkifStatus.NotSupported;
            Finish(request);
            return;
        }
        request.State = RequestState.AtBackend;
        try { backend.Submit(request); }
        catch (Exception ex)
        {
            Report(TapDiagnosticLevel.Error, request.Session, $"backend threw on {request}", ex);
            if (request.State == RequestState.AtBackend)
            {
                request.Status = BlkifStatus.Error;
                Finish(request);
            }
        }
    }

    private void Finish(TapRequest request)
    {
        request.State = RequestState.Completing;
        foreach (var hook in _responseChain)
        {
            try { hook.OnResponse(request); }
            catch (Exception ex)
            {
                Report(TapDiagnosticLevel.Error, request.Session, $"response hook threw on {request}", ex);
                request.Status = BlkifStatus.Error;
            }
        }
        var session = request.Session;
        var stats = session.Statistics;
        stats.Requests++;
        if (request.Status != BlkifStatus.Okay) stats.Errors++;
        else if (request.Operation == BlkifOperation.Read) stats.BytesRead += request.ByteCount;
        else if (request.HasData) stats.BytesWritten += request.ByteCount;
        session.Metrics?.Completed(request, request.Status == BlkifStatus.Okay);
        try
        {
            session.Complete(request);
            // Once per pass per session; a session belongs to one runtime, so a flag on it marks membership.
            if (!session.PendingFlush)
            {
                session.PendingFlush = true;
                _dirty.Add(session);
            }
        }
        catch (Exception ex)
        {
            Report(TapDiagnosticLevel.Error, session, $"transport failed to deliver {request}", ex);
        }
        Volatile.Write(ref _inFlight, _inFlight - 1);
        request.State = RequestState.Free;
        request.Release();
        _pool.Push(request);
    }
}
