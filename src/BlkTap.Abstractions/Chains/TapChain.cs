using System.Collections;
using System.Runtime.ExceptionServices;

namespace BlkTap.Chains;

/// <summary>
/// A chain of taps, listed from the frontend side to the terminator, that owns its taps: <see cref="Dispose"/>
/// disposes each once, in reverse order (the terminator first). <see cref="TapRegistry.Build"/> returns one.
/// </summary>
/// <remarks>
/// Threading: build it (<see cref="Add"/>) and register it on one thread before the runtime starts; reading it is
/// then safe from any thread. <see cref="Dispose"/> is for once the runtime has stopped (the taps' hooks run on the
/// loop thread until then); it is idempotent and safe from any thread.
/// </remarks>
public sealed class TapChain : IReadOnlyList<ITap>, IDisposable
{
    private readonly List<ITap> _taps;
    private int _disposed;

    /// <summary>An empty chain; <see cref="Add"/> appends taps.</summary>
    public TapChain() => _taps = [];

    /// <summary>A chain that owns <paramref name="taps"/> (frontend side first).</summary>
    public TapChain(IEnumerable<ITap> taps)
    {
        ArgumentNullException.ThrowIfNull(taps);
        _taps = [.. taps];
    }

    /// <summary>Appends <paramref name="tap"/> on the terminator side; the chain now owns it.</summary>
    /// <exception cref="ObjectDisposedException">The chain has been disposed.</exception>
    public void Add(ITap tap)
    {
        ArgumentNullException.ThrowIfNull(tap);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        _taps.Add(tap);
    }

    /// <inheritdoc/>
    public int Count => _taps.Count;

    /// <inheritdoc/>
    public ITap this[int index] => _taps[index];

    /// <inheritdoc/>
    public IEnumerator<ITap> GetEnumerator() => _taps.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Registers this chain's hooks on <paramref name="runtime"/>, as <see cref="Register(TapRuntime, IReadOnlyList{ITap})"/>.</summary>
    public void Register(TapRuntime runtime) => Register(runtime, this);

    /// <summary>
    /// Registers <paramref name="chain"/> (frontend side first): request hooks in chain order, so a
    /// request meets the frontend-side taps first; response and control hooks in reverse order, so a
    /// response meets the terminator-side taps first (a cow merges before a crypt decrypts) and at
    /// attach the terminator sizes the disk before the taps above it look at the size.
    /// </summary>
    public static void Register(TapRuntime runtime, IReadOnlyList<ITap> chain)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(chain);
        foreach (var tap in chain)
            if (tap.RequestHook != null) runtime.RegisterRequestHook(tap.Name, tap.RequestHook);
        for (int i = chain.Count - 1; i >= 0; i--)
        {
            if (chain[i].ResponseHook != null) runtime.RegisterResponseHook(chain[i].Name, chain[i].ResponseHook!);
            if (chain[i].ControlHook != null) runtime.RegisterControlHook(chain[i].Name, chain[i].ControlHook!);
        }
    }

    /// <summary>
    /// Disposes every tap once, the terminator first. A tap that throws does not keep the others from being
    /// disposed; afterwards its exception is rethrown (an <see cref="AggregateException"/> if several threw).
    /// Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        List<Exception>? errors = null;
        for (int i = _taps.Count - 1; i >= 0; i--)
        {
            try { _taps[i].Dispose(); }
            catch (Exception ex) { (errors ??= []).Add(ex); }
        }
        if (errors is null) return;
        if (errors.Count == 1) ExceptionDispatchInfo.Throw(errors[0]);
        throw new AggregateException("more than one tap failed to dispose", errors);
    }
}
