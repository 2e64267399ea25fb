using System.Runtime.InteropServices;

namespace BlkTap.Bench;

/// <summary>
/// Frontends and a tap in one thread, with no thread hops: N front rings over native pages, each a
/// <see cref="RingSession"/> of one <see cref="TapRuntime"/> driven with RunOnce. Measures the
/// runtime's own cost per request (decode, validate, map, hooks, respond, publish). With several
/// frontends each round fills every ring, signals every session, then runs one loop pass
/// (round-robin over the sessions, as the runtime serves them).
/// </summary>
/// <remarks>Threading: one thread (the caller drives the loop).</remarks>
internal sealed unsafe class RingHarness : IDisposable
{
    private const int DataPages = 64;
    private readonly Frontend[] _frontends;
    public readonly TapRuntime Runtime;

    /// <summary>One emulated frontend: its ring page, its data pages, its front ring and the tap's session.</summary>
    private sealed class Frontend
    {
        public readonly nint[] Pages = new nint[DataPages + 1];
        public FrontRing Front = null!;
        public RingSession Session = null!;
    }

    public RingHarness(Action<TapRuntime> configure, ulong sectors = 1 << 20, int frontends = 1, string? imageId = null)
    {
        Runtime = new TapRuntime(new TapRuntimeOptions { Name = "bench" });
        configure(Runtime);
        Runtime.UseExternalDriver(static () => { });
        _frontends = new Frontend[frontends];
        for (int f = 0; f < frontends; f++)
        {
            var fe = _frontends[f] = new Frontend();
            for (int i = 0; i <= DataPages; i++) { fe.Pages[i] = (nint)NativeMemory.AlignedAlloc(4096, 4096); new Span<byte>((void*)fe.Pages[i], 4096).Clear(); }
            fe.Front = new FrontRing(fe.Pages[0], 4096, BlkifLayout.X86_64, initialiseShared: true);
            fe.Session = new RingSession($"bench{f}", (ushort)(1 + f), imageId, new LocalMapper(fe.Pages));
            Runtime.AttachSession(fe.Session);
            if (fe.Session.Sectors == 0) fe.Session.Sectors = sectors;
            var error = fe.Session.ConnectRing([0u], BlkifProtocol.X86_64, new NullChannel());
            if (error != null) throw new InvalidOperationException(error);
            Runtime.ConnectSession(fe.Session);
        }
        Runtime.RunOnce();
    }

    /// <summary>The first frontend's ring.</summary>
    public FrontRing Front => _frontends[0].Front;

    /// <summary>Sectors of the disk the first session sees.</summary>
    public ulong Sectors => _frontends[0].Session.Sectors;

    /// <summary>
    /// Runs <paramref name="batches"/> rounds; each round queues <c>ring size</c> one-page requests
    /// (4 KiB, at random 4 KiB-aligned sectors) on every frontend. Returns the requests completed.
    /// Throws if a response is missing or not OKAY.
    /// </summary>
    public long Run(int batches, BlkifOperation op, ulong seed = 12345UL)
    {
        long done = 0;
        var req = new BlkifRequest { Operation = op, SegmentCount = 1 };
        var rng = seed;
        for (int b = 0; b < batches; b++)
        {
            foreach (var fe in _frontends)
            {
                uint size = fe.Front.Size;
                ulong slots = (fe.Session.Sectors - 8) / 8;
                for (uint i = 0; i < size; i++)
                {
                    req.Id = (ulong)(done + i);
                    req.Sector = BenchStats.NextSlotSector(ref rng, slots);
                    req.Segments[0] = new BlkifSegment(1 + (i % DataPages), 0, 7);
                    fe.Front.EnqueueRequest(req);
                }
                fe.Front.PushRequestsAndCheckNotify();
                fe.Session.Signal();
            }
            Runtime.RunOnce();
            foreach (var fe in _frontends)
            {
                long n = fe.Front.UnconsumedResponses();
                if (n != fe.Front.Size) throw new InvalidOperationException($"{fe.Session.Name}: expected {fe.Front.Size} responses, got {n}");
                for (long i = 0; i < n; i++)
                {
                    var r = fe.Front.TakeResponse();
                    if (r.Status != BlkifStatus.Okay) throw new InvalidOperationException($"{fe.Session.Name}: request {r.Id} failed: {r.Status}");
                }
                done += n;
            }
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
        foreach (var fe in _frontends) Runtime.CloseSession(fe.Session);
        Runtime.Dispose();
        foreach (var fe in _frontends)
            foreach (var p in fe.Pages) NativeMemory.AlignedFree((void*)p);
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
