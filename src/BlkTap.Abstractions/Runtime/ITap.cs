namespace BlkTap;

/// <summary>
/// A tap as a unit of a chain: the hooks one example (dump, cow, img...) contributes. A chain is
/// listed from the frontend side to the terminator.
/// </summary>
/// <remarks>Threading: the hooks follow the hook rules (loop thread); Dispose is called once the runtime has stopped.</remarks>
public interface ITap : IDisposable
{
    /// <summary>The tap's name (as in the chain spec).</summary>
    string Name { get; }
    /// <summary>The request hook, or null.</summary>
    IRequestHook? RequestHook { get; }
    /// <summary>The response hook, or null.</summary>
    IResponseHook? ResponseHook { get; }
    /// <summary>The control hook, or null.</summary>
    IControlHook? ControlHook { get; }
}

/// <summary>Registers chains of taps on a runtime.</summary>
public static class TapChain
{
    /// <summary>
    /// Registers <paramref name="chain"/> (frontend side first): request hooks in chain order, so a
    /// request meets the frontend-side taps first; response and control hooks in reverse order, so a
    /// response meets the terminator-side taps first (a cow merges before a crypt decrypts) and at
    /// attach the terminator sizes the disk before the taps above it look at the size.
    /// </summary>
    public static void Register(TapRuntime runtime, IReadOnlyList<ITap> chain)
    {
        foreach (var tap in chain)
            if (tap.RequestHook != null) runtime.RegisterRequestHook(tap.Name, tap.RequestHook);
        for (int i = chain.Count - 1; i >= 0; i--)
        {
            if (chain[i].ResponseHook != null) runtime.RegisterResponseHook(chain[i].Name, chain[i].ResponseHook!);
            if (chain[i].ControlHook != null) runtime.RegisterControlHook(chain[i].Name, chain[i].ControlHook!);
        }
    }
}
