namespace BlkTap;

/// <summary>
/// A tap as a unit of a chain: the hooks one example (dump, cow, img...) contributes. A chain is
/// listed from the frontend side to the terminator.
/// </summary>
/// <remarks>Threading: the hooks follow the hook rules (loop thread); Dispose is called once the runtime has stopped.
/// A chain of taps is a <see cref="Chains.TapChain"/>.</remarks>
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
