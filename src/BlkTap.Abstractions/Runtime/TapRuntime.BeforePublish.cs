namespace BlkTap;

public sealed partial class TapRuntime
{
    // Work a loop component finishes at the end of a pass before the pass's responses are published, so that what it
    // answers there leaves with them (a storage queue's batch: FileBlockDevice submits and answers it here).

    private readonly List<IEndOfPassHandler> _beforePublish = new();

    /// <summary>
    /// Loop thread: runs <paramref name="handler"/> once, at the end of this pass, before the pass's responses are
    /// published (and before the <see cref="RunAtEndOfPass"/> handlers). What it answers with <see cref="CompleteStolen"/>
    /// is published in this pass.
    /// </summary>
    internal void RunBeforePublish(IEndOfPassHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _beforePublish.Add(handler);
    }

    /// <summary>
    /// Loop thread, from a <see cref="RunBeforePublish"/> handler: answers a request stolen earlier with
    /// <paramref name="status"/> now, through the response hooks, instead of posting it to the next pass as
    /// <see cref="InjectResponse"/> does. A request in any other state goes through <see cref="InjectResponse"/>.
    /// </summary>
    internal bool CompleteStolen(TapRequest request, BlkifStatus status)
    {
        if (Interlocked.CompareExchange(ref request.State, RequestState.Completing, RequestState.Stolen) != RequestState.Stolen)
            return InjectResponse(request, status);
        request.Status = status;
        Finish(request);
        return true;
    }

    /// <summary>Loop thread, at the end of every pass before publishing: the handlers registered so far (they may register others for the next pass).</summary>
    private void RunBeforePublishHandlers()
    {
        int count = _beforePublish.Count;
        if (count == 0) return;
        for (int i = 0; i < count; i++)
        {
            try { _beforePublish[i].OnEndOfPass(); }
            catch (Exception ex) { Report(TapDiagnosticLevel.Error, null, "a before-publish handler threw", ex); }
        }
        _beforePublish.RemoveRange(0, count);
    }
}
