using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using BlkTap.Testing;

namespace BlkTap.Testing.Rigs;

/// <summary>A runtime on its own loop thread with buffer sessions, for hook-semantics tests.</summary>
internal sealed unsafe class RuntimeHarness : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;
    public readonly TapRuntime Runtime;
    public readonly ConcurrentQueue<string> Diagnostics = new();
    private readonly List<nint> _buffers = new();

    public RuntimeHarness(Action<TapRuntime> configure, ILoopWaiter? waiter = null, string name = "tap")
    {
        Runtime = new TapRuntime(new TapRuntimeOptions { Name = name, Diagnostics = d => Diagnostics.Enqueue(d.ToString()), Waiter = waiter });
        configure(Runtime);
        _loop = Runtime.RunAsync(_cts.Token);
    }

    public BufferSession Attach(string name, ulong sectors, string? imageId = null)
    {
        var s = new BufferSession(name, imageId) ;
        OnLoop(() => { Runtime.AttachSession(s); if (s.Sectors == 0) s.Sectors = sectors; Runtime.ConnectSession(s); });
        return s;
    }

    public void OnLoop(Action a)
    {
        var done = new ManualResetEventSlim();
        Exception? error = null;
        Runtime.Post(() => { try { a(); } catch (Exception ex) { error = ex; } finally { done.Set(); } });
        if (!done.Wait(Waits.Deadline)) throw new TimeoutException("loop did not run the action");
        if (error != null) throw error;
    }

    public nint Alloc(int bytes)
    {
        var p = (nint)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 4096);
        new Span<byte>((void*)p, bytes).Clear();
        lock (_buffers) _buffers.Add(p);
        return p;
    }

    public Task<BlkifStatus> SubmitAsync(BufferSession s, BlkifOperation op, ulong sector, nint data, int length, ulong token)
    {
        var tcs = new TaskCompletionSource<BlkifStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        s.Submit(new BufferRequest { Operation = op, Sector = sector, Data = data, Length = length, UserToken = token, Completed = b => tcs.SetResult(b.Status) });
        return tcs.Task;
    }

    public void Dispose()
    {
        _cts.Cancel();
        _loop.Wait(Waits.Deadline);
        Runtime.Dispose();
        foreach (var p in _buffers) NativeMemory.AlignedFree((void*)p);
    }
}
