using System.Runtime.InteropServices;

namespace BlkTap.Cli.Bench;

/// <summary>
/// A frontend and a tap in one thread, with no thread hops: a front ring over native pages, a
/// <see cref="RingSession"/> served by a <see cref="TapRuntime"/> driven with RunOnce. Measures the
/// runtime's own cost per request (decode, validate, map, hooks, respond, publish).
/// </summary>
internal sealed unsafe class RingHarness : IDisposable
{
    private const int DataPages = 64;
    private readonly nint _ring;
    private readonly nint[] _pages = new nint[DataPages + 1];
    public readonly FrontRing Front;
    public readonly TapRuntime Runtime;
    private readonly RingSession _session;

    public RingHarness(Action<TapRuntime> configure, ulong sectors = 1 << 20)
    {
        _ring = (nint)NativeMemory.AlignedAlloc(4096, 4096);
        new Span<byte>((void*)_ring, 4096).Clear();
        for (int i = 1; i <= DataPages; i++) { _pages[i] = (nint)NativeMemory.AlignedAlloc(4096, 4096); new Span<byte>((void*)_pages[i], 4096).Clear(); }
        _pages[0] = _ring;
        Front = new FrontRing(_ring, 4096, BlkifLayout.X86_64, initialiseShared: true);
        Runtime = new TapRuntime(new TapRuntimeOptions { Name = "bench" });
        configure(Runtime);
        Runtime.UseExternalDriver(static () => { });
        _session = new RingSession("bench", 1, null, new LocalMapper(_pages));
        Runtime.AttachSession(_session);
        if (_session.Sectors == 0) _session.Sectors = sectors;
        var error = _session.ConnectRing([0u], BlkifProtocol.X86_64, new NullChannel());
        if (error != null) throw new InvalidOperationException(error);
        Runtime.ConnectSession(_session);
        Runtime.RunOnce();
    }

    /// <summary>Runs <paramref name="batches"/> rounds of <c>ring size</c> one-page requests through the tap.</summary>
    public long Run(int batches, BlkifOperation op)
    {
        long done = 0;
        uint size = Front.Size;
        var req = new BlkifRequest { Operation = op, SegmentCount = 1 };
        var rng = 12345UL;
        for (int b = 0; b < batches; b++)
        {
            for (uint i = 0; i < size; i++)
            {
                rng = rng * 6364136223846793005UL + 1442695040888963407UL;
                req.Id = (ulong)(done + i);
                req.Sector = (rng >> 20) % ((_session.Sectors - 8) / 8) * 8;
                req.Segments[0] = new BlkifSegment(1 + (i % DataPages), 0, 7);
                Front.EnqueueRequest(req);
            }
            Front.PushRequestsAndCheckNotify();
            _session.Signal();
            Runtime.RunOnce();
            long n = Front.UnconsumedResponses();
            if (n != size) throw new InvalidOperationException($"expected {size} responses, got {n}");
            for (long i = 0; i < n; i++)
            {
                var r = Front.TakeResponse();
                if (r.Status != BlkifStatus.Okay) throw new InvalidOperationException($"request {r.Id} failed: {r.Status}");
            }
            done += n;
        }
        return done;
    }

    /// <summary>The baseline: the same ring traffic answered by a bare BackRing loop (no runtime, no hooks).</summary>
    public static long RunBareEcho(int batches)
    {
        var ring = (nint)NativeMemory.AlignedAlloc(4096, 4096);
        try
        {
            new Span<byte>((void*)ring, 4096).Clear();
            var front = new FrontRing(ring, 4096, BlkifLayout.X86_64, initialiseShared: true);
            var back = new BackRing(ring, 4096, BlkifLayout.X86_64);
            var req = new BlkifRequest { Operation = BlkifOperation.Read, SegmentCount = 1 };
            long done = 0;
            for (int b = 0; b < batches; b++)
            {
                for (uint i = 0; i < front.Size; i++) { req.Id = (ulong)(done + i); req.Segments[0] = new BlkifSegment(1, 0, 7); front.EnqueueRequest(req); }
                front.PushRequestsAndCheckNotify();
                long n = back.UnconsumedRequests();
                for (long i = 0; i < n; i++)
                {
                    back.TakeRequest(out var r);
                    back.EnqueueResponse(new BlkifResponse(r.Id, r.Operation, BlkifStatus.Okay));
                }
                back.PushResponsesAndCheckNotify();
                long m = front.UnconsumedResponses();
                for (long i = 0; i < m; i++) front.TakeResponse();
                done += m;
            }
            return done;
        }
        finally { NativeMemory.AlignedFree((void*)ring); }
    }

    public void Dispose()
    {
        Runtime.CloseSession(_session);
        Runtime.Dispose();
        foreach (var p in _pages) NativeMemory.AlignedFree((void*)p);
    }

    private sealed class LocalMapper(nint[] pages) : IGrantMapper
    {
        public GrantStatus Map(ushort domid, ReadOnlySpan<uint> refs, bool writable, Span<nint> addresses, out long handle)
        {
            handle = 1;
            for (int i = 0; i < refs.Length; i++)
            {
                if (refs[i] >= (uint)pages.Length) { handle = 0; return GrantStatus.NotGranted; }
                addresses[i] = pages[refs[i]];
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
