namespace BlkTap;

public sealed partial class TapRuntime
{
    // Stolen requests handed back from any thread: answered (InjectResponse) or sent on down the chain (Resume).

    /// <summary>
    /// Answers a stolen request, or one at the backend, with <paramref name="status"/>
    /// (blktap_inject_response). Safe from any thread; the response runs through the response hooks on
    /// the loop. Returns false (and does nothing) if the request is not waiting for an answer.
    /// </summary>
    public bool InjectResponse(TapRequest request, BlkifStatus status)
    {
        while (true)
        {
            int state = Volatile.Read(ref request.State);
            switch (state)
            {
                case RequestState.Stolen:
                case RequestState.AtBackend:
                    if (Interlocked.CompareExchange(ref request.State, RequestState.Completing, state) != state) continue;
                    request.PendingStatus = status;
                    EnqueueComplete(request);
                    return true;
                case RequestState.InHooks:
                    // The hook that is stealing it has not returned yet (another thread was quick):
                    // remember the answer; Dispatch delivers it when the hook returns Stolen.
                    request.PendingStatus = status;
                    if (Interlocked.CompareExchange(ref request.State, RequestState.EarlyInject, state) != state) continue;
                    return true;
                default:
                    return false;
            }
        }
    }

    /// <summary>
    /// Sends a stolen request on down the chain, to the hook after the one that stole it (a delay
    /// that has waited, a cache that missed). Safe from any thread, even before the stealing hook has
    /// returned. False if the request is not stolen.
    /// </summary>
    public bool Resume(TapRequest request)
    {
        while (true)
        {
            int state = Volatile.Read(ref request.State);
            if (state == RequestState.Stolen)
            {
                if (Interlocked.CompareExchange(ref request.State, RequestState.InHooks, state) != state) continue;
                EnqueueResume(request);
                return true;
            }
            if (state == RequestState.InHooks)
            {
                if (Interlocked.CompareExchange(ref request.State, RequestState.EarlyResume, state) != state) continue;
                return true;
            }
            return false;
        }
    }
}
