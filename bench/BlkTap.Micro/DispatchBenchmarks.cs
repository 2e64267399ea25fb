using BenchmarkDotNet.Attributes;

namespace BlkTap.Micro;

/// <summary>
/// Hook dispatch through <see cref="TapRuntime"/> on one thread: a full ring of 4 KiB reads taken by a
/// <see cref="RingSession"/>, shown to <see cref="PassHooks"/> passing hooks and answered by a null
/// terminator (or the mem terminator, which copies the data), responses published and consumed.
/// </summary>
[MemoryDiagnoser]
public class DispatchBenchmarks
{
    private NativePages _pages = null!;
    private FrontRing _front = null!;
    private TapRuntime _runtime = null!;
    private RingSession _session = null!;
    private BlkifRequest _request;

    [Params(0, 3)]
    public int PassHooks { get; set; }

    [Params(false, true)]
    public bool MemTerminator { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pages = new NativePages(33);
        _front = new FrontRing(_pages[0], 4096, BlkifLayout.X86_64, initialiseShared: true);
        _runtime = new TapRuntime(new TapRuntimeOptions { Name = "micro" });
        for (int i = 0; i < PassHooks; i++) _runtime.RegisterRequestHook($"pass{i}", Hook.Request(static _ => HookResult.Pass));
        if (MemTerminator)
        {
            var mem = new BlockDeviceHook(new MemoryBlockDevice(64L << 20));
            _runtime.RegisterControlHook("mem", mem);
            _runtime.RegisterRequestHook("mem", mem);
        }
        else _runtime.RegisterRequestHook("null", Hook.Request(static r => { r.Status = BlkifStatus.Okay; return HookResult.Respond; }));
        _runtime.UseExternalDriver(static () => { });
        _session = new RingSession("micro", 1, null, new PageMapper(_pages));
        _runtime.AttachSession(_session);
        if (_session.Sectors == 0) _session.Sectors = 64L << 20 >> 9;
        var error = _session.ConnectRing([0u], BlkifProtocol.X86_64, new NullChannel());
        if (error != null) throw new InvalidOperationException(error);
        _runtime.ConnectSession(_session);
        _runtime.RunOnce();
        _request = new BlkifRequest { Operation = BlkifOperation.Read, SegmentCount = 1 };
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _runtime.CloseSession(_session);
        _runtime.Dispose();
        _pages.Dispose();
    }

    /// <summary>One loop pass over a full ring (32 requests); divide by 32 per request.</summary>
    [Benchmark(OperationsPerInvoke = 32)]
    public long FullRing()
    {
        for (uint i = 0; i < _front.Size; i++)
        {
            _request.Id = i;
            _request.Sector = i * 8;
            _request.Segments[0] = new BlkifSegment(1 + i, 0, 7);
            _front.EnqueueRequest(_request);
        }
        _front.PushRequestsAndCheckNotify();
        _session.Signal();
        _runtime.RunOnce();
        long n = _front.UnconsumedResponses();
        for (long i = 0; i < n; i++) _front.TakeResponse();
        if (n != _front.Size) throw new InvalidOperationException($"expected {_front.Size} responses, got {n}");
        return n;
    }

    private sealed class PageMapper(NativePages pages) : IGrantMapper
    {
        public GrantStatus Map(ushort domid, ReadOnlySpan<uint> refs, bool writable, Span<nint> addresses, out long handle)
        {
            handle = 1;
            for (int i = 0; i < refs.Length; i++)
            {
                if (refs[i] >= (uint)pages.Count) { handle = 0; return GrantStatus.NotGranted; }
                addresses[i] = pages[(int)refs[i]];
            }
            return GrantStatus.Okay;
        }

        public void Unmap(long handle) { }
    }

    private sealed class NullChannel : IEventChannel
    {
        public uint LocalPort => 1;
        public void Notify() { }
        public void SetHandler(Action? onEvent) { }
        public void Dispose() { }
    }
}
