using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using BlkTap.Examples;
using BlkTap.Trace;

namespace BlkTap.Fuzz;

/// <summary>A harness found a bug: an invariant broke or an exception the contract does not allow escaped.</summary>
internal sealed class FuzzBugException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The fuzz targets. Each takes any bytes; returning normally means the input was handled as the
/// contract says (decoded, or refused with the documented error). Anything else throws: AFL records
/// the input as a crash, the replay mode prints its path.
/// </summary>
internal static class FuzzTargets
{
    public static readonly string[] Names = ["decoder", "ring", "nbd", "trace", "nbd-header", "nbd-options", "blkparse", "msr", "fio", "selftest"];

    public static void Run(string target, ReadOnlySpan<byte> input)
    {
        switch (target)
        {
            case "decoder": Decoder(input); break;
            case "ring": Ring(input); break;
            // Combined targets (one AFL run each in CI): byte 0 picks the parser.
            case "nbd" when input.Length > 0:
                if ((input[0] & 1) == 0) NbdHeader(input[1..]); else NbdOptions.Run(input[1..]);
                break;
            case "trace" when input.Length > 0:
                Run((input[0] % 3) switch { 0 => "blkparse", 1 => "msr", _ => "fio" }, input[1..]);
                break;
            case "nbd" or "trace": break;
            case "nbd-header": NbdHeader(input); break;
            // A planted bug (an input starting with '!' crashes), so a test can prove AFL reports crashes at all.
            case "selftest":
                NbdHeader(input); // some instrumented code, or AFL refuses to start ("no instrumentation detected")
                if (input.Length > 0 && input[0] == (byte)'!') throw new FuzzBugException("selftest: planted crash");
                break;
            case "nbd-options": NbdOptions.Run(input); break;
            case "blkparse": Trace(BlkparseImporter.Instance.Read, input); break;
            case "msr": Trace(MsrCsvImporter.Instance.Read, input); break;
            case "fio": Trace(FioIologImporter.Instance.Read, input); break;
            default: throw new ArgumentException($"unknown target '{target}' (known: {string.Join(", ", Names)})");
        }
    }

    /// <summary>
    /// Byte 0: ABI (bit 0), read-only (bit 1); bytes 1..8: disk sectors; the rest: one request slot.
    /// Decoding then validating must not throw, and a request judged valid must obey blkif.h's rules.
    /// </summary>
    private static void Decoder(ReadOnlySpan<byte> input)
    {
        if (input.Length < 9) return;
        var layout = BlkifLayout.For((input[0] & 1) == 0 ? BlkifProtocol.X86_64 : BlkifProtocol.X86_32);
        bool readOnly = (input[0] & 2) != 0;
        ulong disk = BinaryPrimitives.ReadUInt64LittleEndian(input[1..]);
        Span<byte> slot = stackalloc byte[layout.RequestSize];
        slot.Clear();
        input[9..][..Math.Min(input.Length - 9, slot.Length)].CopyTo(slot);
        BlkifCodec.DecodeRequest(slot, layout, out var request);
        var fault = BlkifValidation.Validate(request, disk, readOnly, maxIndirectSegments: 256);
        if (fault != RequestFault.None) return;
        if (request.Operation is BlkifOperation.Read or BlkifOperation.Write)
        {
            if (request.SegmentCount is < 1 or > BlkifConstants.MaxSegmentsPerRequest) throw new FuzzBugException($"valid request with {request.SegmentCount} segments");
            ulong total = 0;
            for (int i = 0; i < request.SegmentCount; i++)
            {
                var s = request.Segments[i];
                if (s.FirstSector > s.LastSector || s.LastSector > 7) throw new FuzzBugException($"valid request with segment {s.FirstSector}-{s.LastSector}");
                total += (ulong)(s.LastSector - s.FirstSector + 1);
            }
            if (request.Sector > disk || total > disk - request.Sector) throw new FuzzBugException($"valid request past the end: {request.Sector}+{total} of {disk}");
            if (readOnly && request.Operation == BlkifOperation.Write) throw new FuzzBugException("valid write on a read-only disk");
        }
        // Round trip: what the frontend could have written encodes back to the same request.
        Span<byte> again = stackalloc byte[layout.RequestSize];
        BlkifCodec.EncodeRequest(request, layout, again);
        BlkifCodec.DecodeRequest(again, layout, out var twice);
        if (twice.Operation != request.Operation || twice.Sector != request.Sector || twice.Id != request.Id || twice.SegmentCount != request.SegmentCount)
            throw new FuzzBugException("encode(decode(x)) does not decode to the same request");
    }

    /// <summary>
    /// Byte 0: ABI; then a 4096-byte ring page (header and slots) taken from the input; after it,
    /// 4-byte values the "frontend" writes to req_prod between consumer passes. The consumer must
    /// either take requests or report a protocol error, never throw or run past its slots.
    /// </summary>
    private static unsafe void Ring(ReadOnlySpan<byte> input)
    {
        if (input.Length < 1) return;
        var layout = BlkifLayout.For((input[0] & 1) == 0 ? BlkifProtocol.X86_64 : BlkifProtocol.X86_32);
        const int page = BlkifConstants.PageSize;
        byte* mem = (byte*)NativeMemory.AlignedAlloc(page, page);
        try
        {
            var span = new Span<byte>(mem, page);
            span.Clear();
            var body = input[1..];
            body[..Math.Min(body.Length, page)].CopyTo(span);
            var moves = body.Length > page ? body[page..] : default;
            var ring = new BackRing((nint)mem, page, layout);
            for (int pass = 0; pass < 64; pass++)
            {
                long n = ring.FinalCheckForRequests();
                if (n < 0) return; // protocol error: the session would be closed
                if (n > ring.Size - ring.Outstanding) throw new FuzzBugException($"{n} unconsumed requests but only {ring.Size - ring.Outstanding} free slots");
                for (long i = 0; i < n; i++)
                {
                    ring.TakeRequest(out var r);
                    var fault = BlkifValidation.Validate(r, 1 << 20, readOnly: false);
                    ring.EnqueueResponse(new BlkifResponse(r.Id, r.Operation, BlkifValidation.StatusFor(fault)));
                }
                ring.PushResponsesAndCheckNotify();
                if (ring.Outstanding != 0) throw new FuzzBugException("responses enqueued but outstanding is not zero");
                if (moves.Length < 4) return;
                // The frontend publishes more (or garbage): req_prod moves.
                *(uint*)mem = BinaryPrimitives.ReadUInt32LittleEndian(moves);
                moves = moves[4..];
            }
        }
        finally { NativeMemory.AlignedFree(mem); }
    }

    /// <summary>Any bytes: a header decodes (and re-encodes to the same bytes) or is refused with a reason.</summary>
    private static void NbdHeader(ReadOnlySpan<byte> input)
    {
        if (BlkTap.Nbd.NbdRequestHeader.TryRead(input, out var h, out var error))
        {
            Span<byte> again = stackalloc byte[BlkTap.Nbd.NbdMagic.RequestHeaderSize];
            h.Write(again);
            if (!again.SequenceEqual(input[..again.Length])) throw new FuzzBugException("header does not re-encode to its bytes");
        }
        else if (string.IsNullOrEmpty(error)) throw new FuzzBugException("refused without a reason");
    }

    /// <summary>Any text: records or <see cref="TraceFormatException"/>, nothing else.</summary>
    private static void Trace(Func<TextReader, string, IEnumerable<TraceRecord>> read, ReadOnlySpan<byte> input)
    {
        var text = Encoding.UTF8.GetString(input);
        try
        {
            int n = 0;
            foreach (var record in read(new StringReader(text), "fuzz"))
                if (++n > 100_000) break;
        }
        catch (TraceFormatException) { }
    }
}
