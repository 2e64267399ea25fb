using BlkTap.Loop;

namespace BlkTap;

public sealed partial class TapRuntime
{
    // The runtime's work on its EventLoop (answers, resumes and session signals posted without allocating, and the
    // publishing of each pass's responses), and the loop members callers of the runtime have always used, delegated.

    /// <summary>What a posted runtime item does (the code of <see cref="ILoopWorkHandler.RunOnLoop"/>).</summary>
    private enum WorkKind { Complete, Resume, Signal }

    /// <summary>Runs <paramref name="action"/> on the loop thread. Safe from any thread.</summary>
    public void Post(Action action) => _loop.Post(action);

    internal void EnqueueSignal(TapSession session) => _loop.Post(_loopWork, session, (int)WorkKind.Signal);

    private void EnqueueComplete(TapRequest request) => _loop.Post(_loopWork, request, (int)WorkKind.Complete);

    private void EnqueueResume(TapRequest request) => _loop.Post(_loopWork, request, (int)WorkKind.Resume);

    /// <summary>Loop thread: see <see cref="EventLoop.RunAtEndOfPass"/>; on a tap's loop the handler runs after every response of the pass has been delivered.</summary>
    public void RunAtEndOfPass(IEndOfPassHandler handler) => _loop.RunAtEndOfPass(handler);

    /// <summary>See <see cref="EventLoop.UseExternalDriver"/>: an external scheduler calls <see cref="RunOnce"/> on its thread.</summary>
    public void UseExternalDriver(Action wake) => _loop.UseExternalDriver(wake);

    /// <summary>True when work is queued for the loop. Any thread (a snapshot).</summary>
    public bool HasPendingWork => _loop.HasPendingWork;

    /// <summary>
    /// Runs one pass of the loop (see <see cref="EventLoop.RunOnce"/>): posted actions, session signals, injected
    /// responses, resumed requests, then publishes responses. Returns how many items ran. The caller becomes the loop
    /// thread for the duration.
    /// </summary>
    public int RunOnce() => _loop.RunOnce();

    /// <summary>Runs the loop on the calling thread until <see cref="Stop"/> (blktap_listen).</summary>
    public void Run() => _loop.Run();

    /// <summary>Runs the loop on a dedicated thread until <paramref name="cancellationToken"/> or <see cref="Stop"/>.</summary>
    public Task RunAsync(CancellationToken cancellationToken = default) => _loop.RunAsync(cancellationToken);

    /// <summary>Asks the loop to return. Safe from any thread.</summary>
    public void Stop() => _loop.Stop();

    private void RunWork(object? state, WorkKind kind)
    {
        switch (kind)
        {
            case WorkKind.Complete:
                var completed = (TapRequest)state!;
                completed.Status = completed.PendingStatus;
                Finish(completed);
                break;
            case WorkKind.Resume:
                Dispatch((TapRequest)state!);
                break;
            case WorkKind.Signal:
                var s = (TapSession)state!;
                s.ClearSignal();
                if (s.IsOpen)
                {
                    try { s.Process(); }
                    catch (Exception ex)
                    {
                        Report(TapDiagnosticLevel.Error, s, "transport failed while taking requests", ex);
                        CloseSession(s, "transport failure: " + ex.Message);
                    }
                }
                break;
        }
    }

    /// <summary>Loop thread, at the end of every pass: each session with new completions publishes them once.</summary>
    private void FlushDirty()
    {
        for (int i = 0; i < _dirty.Count; i++)
        {
            var s = _dirty[i];
            s.PendingFlush = false;
            try { s.FlushCompletions(); }
            catch (Exception ex) { Report(TapDiagnosticLevel.Error, s, "transport failed to publish responses", ex); }
        }
        _dirty.Clear();
    }

    /// <summary>
    /// The runtime's part in its loop's passes, kept off the runtime's public surface: the posted items and the pass
    /// finisher that publishes the pass's responses before the loop's end-of-pass handlers run.
    /// </summary>
    private sealed class LoopWork(TapRuntime runtime) : ILoopWorkHandler, IEndOfPassHandler
    {
        public void RunOnLoop(object? state, int code) => runtime.RunWork(state, (WorkKind)code);

        public void OnEndOfPass()
        {
            runtime.RunBeforePublishHandlers();
            runtime.FlushDirty();
        }
    }
}
