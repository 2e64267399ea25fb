namespace BlkTap;

/// <summary>
/// Work a loop component gathers during a pass and finishes once at its end (see
/// <see cref="Loop.IEventLoop.RunAtEndOfPass"/> and <see cref="TapRuntime.RunAtEndOfPass"/>).
/// </summary>
public interface IEndOfPassHandler
{
    /// <summary>Loop thread: the pass's work is done (and, on a tap's loop, its responses have all been delivered).</summary>
    void OnEndOfPass();
}
