using NUnit.Framework;

namespace BlkTap.Testing;

/// <summary>
/// Waits on events with one generous deadline: a loaded 2-core machine must never fail a test because the work
/// was slow, only because it never happened. No fixed sleeps.
/// </summary>
/// <remarks>Threading: call from a test thread, never from an emulator callback or a runtime loop.</remarks>
internal static class Waits
{
    /// <summary>The deadline of every wait.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Blocks until <paramref name="condition"/> holds, re-checking it at every change at or below
    /// <paramref name="watched"/> in <paramref name="store"/>; fails the test after <see cref="Deadline"/>.
    /// </summary>
    public static void ForStore(IXenStore store, Func<bool> condition, string what, string watched = "/")
    {
        // Not disposed: a watch event already on its way may still release it after the watch is gone.
        var changed = new SemaphoreSlim(0);
        using var watch = store.Watch(watched, _ => changed.Release());
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !changed.Wait(left))
            {
                if (condition()) return;
                Assert.Fail($"{what} did not happen within {Deadline.TotalSeconds} s");
            }
        }
    }

    /// <summary>
    /// Blocks until <paramref name="condition"/> holds, re-checking it each time <paramref name="signal"/> is
    /// released (by whatever produces what the condition looks at); fails the test after <see cref="Deadline"/>.
    /// </summary>
    public static void ForSignal(SemaphoreSlim signal, Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !signal.Wait(left))
            {
                if (condition()) return;
                Assert.Fail($"{what} did not happen within {Deadline.TotalSeconds} s");
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> on <paramref name="loop"/> and returns once it has run: a barrier, since everything
    /// posted to the loop before it has run; an exception it throws is rethrown here. Fails the test after
    /// <see cref="Deadline"/>.
    /// </summary>
    public static void OnLoop(BlkTap.Loop.IEventLoop loop, Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(() =>
        {
            try { action(); done.SetResult(); }
            catch (Exception ex) { done.SetException(ex); }
        });
        if (!done.Task.Wait(Deadline)) Assert.Fail($"the loop did not run a posted action within {Deadline.TotalSeconds} s");
    }

    /// <summary>
    /// Runs <paramref name="read"/> on <paramref name="runtime"/>'s loop and returns its result: a barrier, since
    /// everything posted to the loop before it has run. Fails the test after <see cref="Deadline"/>.
    /// </summary>
    public static T OnLoop<T>(TapRuntime runtime, Func<T> read)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        runtime.Post(() =>
        {
            try { result.SetResult(read()); }
            catch (Exception ex) { result.SetException(ex); }
        });
        if (!result.Task.Wait(Deadline)) Assert.Fail($"the runtime loop did not run a posted action within {Deadline.TotalSeconds} s");
        return result.Task.Result;
    }

    /// <summary>
    /// Runs <paramref name="work"/> on <paramref name="emulator"/>'s scheduler (where frontends are driven) and returns
    /// once it has run; an exception it throws is rethrown here. Fails the test after <see cref="Deadline"/>.
    /// </summary>
    public static void OnScheduler(BlkTap.Emulator.XenEmulator emulator, Action work)
    {
        var done = new ManualResetEventSlim();
        Exception? error = null;
        emulator.Post(() =>
        {
            try { work(); }
            catch (Exception ex) { error = ex; }
            finally { done.Set(); }
        });
        if (!done.Wait(Deadline)) Assert.Fail($"the emulator's scheduler did not run a posted action within {Deadline.TotalSeconds} s");
        if (error != null) throw error;
    }

    /// <summary>
    /// Returns once everything a threaded <paramref name="emulator"/> had to run (watch events, posted work) has
    /// run, and then everything that posted to <paramref name="runtime"/>'s loop: all reactions to the writes made
    /// before the call, up to their first loop pass. For asserting that something did NOT happen.
    /// </summary>
    public static void Quiesce(BlkTap.Emulator.XenEmulator emulator, TapRuntime runtime)
    {
        emulator.RunUntilIdle();
        OnLoop(runtime, () => 0);
    }

    /// <summary>Awaits <paramref name="task"/>; fails the test after <see cref="Deadline"/>.</summary>
    public static async Task<T> For<T>(Task<T> task, string what)
    {
        try { return await task.WaitAsync(Deadline); }
        catch (TimeoutException) { Assert.Fail($"{what} did not complete within {Deadline.TotalSeconds} s"); throw; }
    }

    /// <summary>Awaits <paramref name="task"/>; fails the test after <see cref="Deadline"/>.</summary>
    public static async Task For(Task task, string what)
    {
        try { await task.WaitAsync(Deadline); }
        catch (TimeoutException) { Assert.Fail($"{what} did not complete within {Deadline.TotalSeconds} s"); throw; }
    }
}
