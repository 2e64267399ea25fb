using System.Diagnostics;
using BlkTap.Chains;

namespace BlkTap.Emulator.PowerCut.Internal;

/// <summary>
/// A runtime with one chain and one <see cref="BufferSession"/>, its loop run on the caller's thread (an external
/// driver: no loop thread, no xenbus handshake), woken by completions from other threads (aio's workers).
/// Threading: one thread (the caller's) drives it; completions run on it.
/// </summary>
internal sealed class LoopDriver : IDisposable
{
    private readonly AutoResetEvent _wake = new(false);
    private bool _disposed;

    public LoopDriver(TapChain chain)
    {
        Runtime = new TapRuntime(new TapRuntimeOptions
        {
            Name = "powercut",
            Diagnostics = d => { lock (Diagnostics) Diagnostics.Add(d); },
        });
        Runtime.UseExternalDriver(() => _wake.Set());
        chain.Register(Runtime);
        Session = new BufferSession("powercut");
        Runtime.Post(() =>
        {
            Runtime.AttachSession(Session);
            Runtime.ConnectSession(Session);
        });
        RunPending();
    }

    public TapRuntime Runtime { get; }
    public BufferSession Session { get; }
    public List<TapDiagnostic> Diagnostics { get; } = new();

    /// <summary>Runs loop passes while work is queued.</summary>
    public void RunPending()
    {
        while (Runtime.HasPendingWork) Runtime.RunOnce();
    }

    /// <summary>Runs the loop until <paramref name="done"/> holds, waiting for other threads' completions; false at the deadline.</summary>
    public bool RunUntil(Func<bool> done, TimeSpan deadline)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            RunPending();
            if (done()) return true;
            var left = deadline - sw.Elapsed;
            if (left <= TimeSpan.Zero) return false;
            _wake.WaitOne(left < TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100));
        }
    }

    public string ErrorDiagnostics()
    {
        lock (Diagnostics) return string.Join("; ", Diagnostics.Where(d => d.Level == TapDiagnosticLevel.Error).Take(3));
    }

    /// <summary>Closes the session (the taps close their files) and stops the runtime.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Runtime.Post(() => Runtime.CloseSession(Session));
        RunPending();
        Runtime.Dispose();
        _wake.Dispose();
    }
}
