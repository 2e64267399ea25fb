using BenchmarkDotNet.Attributes;

namespace BlkTap.Micro;

/// <summary>BlkifCodec request decode/encode and response encode, both ABIs, and BlkifValidation.</summary>
[MemoryDiagnoser]
public class CodecBenchmarks
{
    private readonly byte[] _wire = new byte[112];
    private readonly byte[] _response = new byte[16];
    private BlkifRequest _request;

    [Params(1, 11)]
    public int Segments { get; set; }

    [Params("x86_64", "x86_32")]
    public string Abi { get; set; } = "x86_64";

    private BlkifLayout Layout => Abi == "x86_64" ? BlkifLayout.X86_64 : BlkifLayout.X86_32;

    [GlobalSetup]
    public void Setup()
    {
        _request = new BlkifRequest { Operation = BlkifOperation.Write, SegmentCount = (byte)Segments, Id = 0x1234, Sector = 4096 };
        for (int i = 0; i < Segments; i++) _request.Segments[i] = new BlkifSegment((uint)(10 + i), 0, 7);
        BlkifCodec.EncodeRequest(_request, Layout, _wire);
    }

    [Benchmark]
    public ulong Decode()
    {
        BlkifCodec.DecodeRequest(_wire, Layout, out var r);
        return r.Id;
    }

    [Benchmark]
    public byte Encode()
    {
        BlkifCodec.EncodeRequest(_request, Layout, _wire);
        return _wire[0];
    }

    [Benchmark]
    public byte EncodeResponse()
    {
        BlkifCodec.EncodeResponse(new BlkifResponse(_request.Id, _request.Operation, BlkifStatus.Okay), Layout, _response);
        return _response[8];
    }

    [Benchmark]
    public RequestFault Validate() => BlkifValidation.Validate(_request, 1UL << 24, readOnly: false);
}
