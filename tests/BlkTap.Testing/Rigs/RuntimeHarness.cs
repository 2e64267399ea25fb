using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace BlkTap.Testing.Rigs;

/// <summary>
/// A runtime on its own loop thread with buffer sessions, for hook-semantics tests without the emulator: register
/// hooks in the constructor's <c>configure</c>, <see cref="Attach"/> a session, <see cref="SubmitAsync"/> requests
/// on buffers from <see cref="Alloc"/>.
/// </summary>
/// <remarks>Threading: call from a test thread; <see cref="OnLoop"/> runs an action on the loop thread and waits.</remarks>
public sealed unsafe class RuntimeHarness : IDisposable
{
    /// <summary>How long <see cref="OnLoop"/> and <see cref="Dispose"/> wait for the loop.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;
    /// <summary>The runtime under test.</summary>
    public readonly TapRuntime Runtime;
    /// <summary>The runtime's diagnostics.</summary>
    public readonly ConcurrentQueue<string> Diagnostics = new();
    private readonly List<nint> _buffers = new();

    /// <summary>Creates the runtime (named <paramref name="name"/>), lets <paramref name="configure"/> register hooks, and starts its loop.</summary>
    public RuntimeHarness(Action<TapRuntime> configure, ILoopWaiter? waiter = null, string name = "tap")
    {
        Runtime = new TapRuntime(new TapRuntimeOptions { Name = name, Diagnostics = d => Diagnostics.Enqueue(d.ToString()), Waiter = waiter });
        configure(Runtime);
        _loop = Runtime.RunAsync(_cts.Token);
    }

    /// <summary>Attaches and connects a buffer session of <paramref name="sectors"/> sectors (unless a control hook sized it).</summary>
    public BufferSession Attach(string name, ulong sectors, string? imageId = null)
    {
        var s = new BufferSession(name, imageId) ;
        OnLoop(() => { Runtime.AttachSession(s); if (s.Sectors == 0) s.Sectors = sectors; Runtime.ConnectSession(s); });
        return s;
    }

    /// <summary>Runs <paramref name="a"/> on the loop thread and waits for it; rethrows what it threw.</summary>
    public void OnLoop(Action a)
    {
        var done = new ManualResetEventSlim();
        Exception? error = null;
        Runtime.Post(() => { try { a(); } catch (Exception ex) { error = ex; } finally { done.Set(); } });
        if (!done.Wait(Deadline)) throw new TimeoutException("loop did not run the action");
        if (error != null) throw error;
    }

    /// <summary>A zeroed, page-aligned native buffer, freed at dispose.</summary>
    public nint Alloc(int bytes)
    {
        var p = (nint)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 4096);
        new Span<byte>((void*)p, bytes).Clear();
        lock (_buffers) _buffers.Add(p);
        return p;
    }

    /// <summary>Submits one request on <paramref name="s"/>; completes with its status.</summary>
    public Task<BlkifStatus> SubmitAsync(BufferSession s, BlkifOperation op, ulong sector, nint data, int length, ulong token)
    {
        var tcs = new TaskCompletionSource<BlkifStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        s.Submit(new BufferRequest { Operation = op, Sector = sector, Data = data, Length = length, UserToken = token, Completed = b => tcs.SetResult(b.Status) });
        return tcs.Task;
    }

    /// <summary>Stops the loop, disposes the runtime, frees the buffers.</summary>
    public void Dispose()
    {
        _cts.Cancel();
        _loop.Wait(Deadline);
        Runtime.Dispose();
        foreach (var p in _buffers) NativeMemory.AlignedFree((void*)p);
    }
}
