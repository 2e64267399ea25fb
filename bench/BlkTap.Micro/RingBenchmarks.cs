using BenchmarkDotNet.Attributes;

namespace BlkTap.Micro;

/// <summary>A full ring (32 requests, x86_64 ABI) pushed by a FrontRing, consumed and answered by a BackRing, responses consumed.</summary>
[MemoryDiagnoser]
public class RingBenchmarks
{
    private NativePages _pages = null!;
    private FrontRing _front = null!;
    private BackRing _back = null!;
    private BlkifRequest _request;

    [GlobalSetup]
    public void Setup()
    {
        _pages = new NativePages(1);
        _front = new FrontRing(_pages[0], 4096, BlkifLayout.X86_64, initialiseShared: true);
        _back = new BackRing(_pages[0], 4096, BlkifLayout.X86_64);
        _request = new BlkifRequest { Operation = BlkifOperation.Read, SegmentCount = 1 };
        _request.Segments[0] = new BlkifSegment(1, 0, 7);
    }

    [GlobalCleanup]
    public void Cleanup() => _pages.Dispose();

    /// <summary>32 requests round trip; divide by 32 for per-request cost.</summary>
    [Benchmark(OperationsPerInvoke = 32)]
    public long PushConsumeRespond()
    {
        for (uint i = 0; i < _front.Size; i++) { _request.Id = i; _front.EnqueueRequest(_request); }
        _front.PushRequestsAndCheckNotify();
        long n = _back.UnconsumedRequests();
        for (long i = 0; i < n; i++)
        {
            _back.TakeRequest(out var r);
            _back.EnqueueResponse(new BlkifResponse(r.Id, r.Operation, BlkifStatus.Okay));
        }
        _back.PushResponsesAndCheckNotify();
        long m = _front.UnconsumedResponses();
        for (long i = 0; i < m; i++) _front.TakeResponse();
        return m;
    }
}
