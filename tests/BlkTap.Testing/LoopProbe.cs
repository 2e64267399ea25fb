namespace BlkTap.Testing;

/// <summary>Asks a running <see cref="TapRuntime"/>'s loop thread about itself. Thread-safe.</summary>
public static class LoopProbe
{
    /// <summary>
    /// The bytes the loop thread has allocated so far (GC.GetAllocatedBytesForCurrentThread, read on that thread).
    /// The probe itself allocates a closure and a work item; its continuation never runs inline on the loop thread,
    /// where its allocations would count as the loop's.
    /// </summary>
    public static Task<long> AllocatedBytesAsync(TapRuntime runtime)
    {
        var result = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        runtime.Post(() => result.SetResult(GC.GetAllocatedBytesForCurrentThread()));
        return result.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
