namespace BlkTap;

public sealed partial class XenbusBlockBackend
{
    // Watch events: each watch's reaction is queued on the loop at most once at a time (XSA-349).

    private int _pendingReactions, _peakPendingReactions;

    /// <summary>
    /// Watch reactions queued on the loop and not yet run: at most one per watch (the devices' directory, each
    /// device's frontend state), however many events a guest's writes fire. Safe from any thread.
    /// </summary>
    public int PendingWatchReactions => Volatile.Read(ref _pendingReactions);

    /// <summary>The most watch reactions ever queued at once (diagnostics, tests). Safe from any thread.</summary>
    public int PeakPendingWatchReactions => Volatile.Read(ref _peakPendingReactions);

    /// <summary>
    /// The reaction to one watch: queued on the loop when an event fires and none is queued yet; it clears its flag
    /// before it runs, so an event during the run queues it once more and no change goes unseen.
    /// </summary>
    /// <remarks>
    /// NOTE: XSA-349 (Linux "xenbus/xenbus_backend: Disallow pending watch messages"): a guest writing thousands of
    /// nodes under a watched path must not make the backend queue one event per write. Every reaction here rereads
    /// the store, so one queued reaction stands for any number of events.
    /// </remarks>
    private sealed class WatchReaction(XenbusBlockBackend owner, Action react)
    {
        private int _queued;

        public void Fire()
        {
            if (Interlocked.Exchange(ref _queued, 1) != 0) return;
            int now = Interlocked.Increment(ref owner._pendingReactions);
            int peak;
            while (now > (peak = Volatile.Read(ref owner._peakPendingReactions)) &&
                   Interlocked.CompareExchange(ref owner._peakPendingReactions, now, peak) != peak) { }
            owner._runtime.Post(Run);
        }

        private void Run()
        {
            Interlocked.Decrement(ref owner._pendingReactions);
            Volatile.Write(ref _queued, 0);
            react();
        }
    }
}
