namespace BlkTap.Tests.XenServe;

/// <summary>Waits for a condition on xenstore state, woken by a watch on the path it depends on, with a generous deadline.</summary>
internal static class StoreWait
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>Returns when <paramref name="condition"/> holds; fails the test naming <paramref name="what"/> after <see cref="Deadline"/>.</summary>
    public static void Until(IXenStore store, string watchPath, Func<bool> condition, string what)
    {
        using var changed = new SemaphoreSlim(0);
        using var watch = store.Watch(watchPath, _ => changed.Release());
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) NUnit.Framework.Assert.Fail($"timed out after {Deadline.TotalSeconds} s waiting for {what}");
            // A watch event or a short re-check (the condition may depend on the loop thread, not only on the store).
            changed.Wait(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
        }
    }
}
