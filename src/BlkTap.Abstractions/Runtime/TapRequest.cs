using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace BlkTap;

/// <summary>
/// A request as hooks see it: validated, copied out of shared memory once, with its data segments
/// mapped. Pooled by the runtime: valid from the moment a hook sees it until its response has gone
/// through the response hooks; do not keep a reference after that.
/// </summary>
/// <remarks>
/// Threading: owned by the loop thread while hooks run. A hook that steals a request may touch it
/// (read or fill its data, set <see cref="Status"/>) from another thread until it calls
/// <see cref="TapRuntime.InjectResponse"/> or <see cref="TapRuntime.Resume"/>, after which it must not.
/// </remarks>
public sealed class TapRequest
{
    private TapSegment[] _segments = new TapSegment[BlkifConstants.MaxSegmentsPerRequest];
    private TagArray _tagOwners;
    private LongArray _tagValues;

    internal TapRequest(TapRuntime runtime) => Runtime = runtime;

    /// <summary>The runtime this request belongs to.</summary>
    public TapRuntime Runtime { get; }

    /// <summary>The session (frontend) that sent it.</summary>
    public TapSession Session { get; private set; } = null!;

    /// <summary>The frontend's own id for the request, echoed in its response.</summary>
    public ulong Id { get; private set; }

    /// <summary>The operation: read, write, barrier write, flush or discard (indirect requests show their inner op).</summary>
    public BlkifOperation Operation { get; private set; }

    /// <summary>The operation byte the frontend sent (<see cref="BlkifOperation.Indirect"/> for indirect requests).</summary>
    public BlkifOperation WireOperation { get; private set; }

    /// <summary>First 512-byte sector.</summary>
    public ulong Sector { get; private set; }

    /// <summary>Number of 512-byte sectors moved (or discarded).</summary>
    public ulong SectorCount { get; private set; }

    /// <summary>For discards: the flag byte (<see cref="BlkifConstants.DiscardSecure"/>).</summary>
    public byte DiscardFlags { get; private set; }

    /// <summary>Whether the caller asked for the write to be durable before the answer (NBD FUA, a barrier).</summary>
    public bool ForceUnitAccess { get; private set; }

    /// <summary>The response status; hooks set it before Respond, or in a response hook.</summary>
    public BlkifStatus Status { get; set; }

    /// <summary>
    /// Stopwatch timestamp when the request entered the runtime: the start of the loop pass that took it (one clock
    /// read per pass serves all the requests that arrived together).
    /// </summary>
    public long SubmitTimestamp { get; private set; }

    /// <summary>Number of data segments.</summary>
    public int SegmentCount { get; private set; }

    /// <summary>The data segments, in disk order (consecutive sectors).</summary>
    public ReadOnlySpan<TapSegment> Segments => _segments.AsSpan(0, SegmentCount);

    /// <summary>Bytes of data the request moves (0 for flush and discard).</summary>
    public int ByteCount { get; private set; }

    /// <summary>True for reads, writes and barrier writes that carry data.</summary>
    public bool HasData => SegmentCount > 0;

    /// <summary>The bytes of segment <paramref name="index"/>.</summary>
    public Span<byte> SegmentData(int index) => Segments[index].Span;

    /// <summary>
    /// Points segment <paramref name="index"/> at other memory of the same length (for instance a hook's bounce page
    /// holding transformed write data), so the hooks below and the terminator use it instead. The memory must stay
    /// valid until the request completes; the hook that redirects gives it back in its response hook. A write's data
    /// in a guest's granted page is mapped read-only on real Xen (blkback and gntdev map write data without write
    /// access): a hook that must change write data redirects to its own copy instead of writing into the segment.
    /// The transport still answers the guest from the original memory, so a read redirected here must be copied
    /// back by the hook's response hook. Loop thread, from a request hook.
    /// </summary>
    public void RedirectSegment(int index, nint address)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, SegmentCount);
        if (address == 0) throw new ArgumentException("a segment cannot point at address 0", nameof(address));
        var s = _segments[index];
        _segments[index] = s with { Address = address };
    }

    /// <summary>Copies the request's data, segment after segment, into <paramref name="destination"/>.</summary>
    public void CopyDataTo(Span<byte> destination)
    {
        int at = 0;
        foreach (var s in Segments) { s.Span.CopyTo(destination[at..]); at += s.Length; }
    }

    /// <summary>Fills the request's data, segment after segment, from <paramref name="source"/>.</summary>
    public void CopyDataFrom(ReadOnlySpan<byte> source)
    {
        int at = 0;
        foreach (var s in Segments) { source.Slice(at, s.Length).CopyTo(s.Span); at += s.Length; }
    }

    /// <summary>
    /// Remembers a value for <paramref name="owner"/> (usually the hook itself) on this request, so a
    /// response hook can find what its request hook decided. At most 8 owners per request.
    /// </summary>
    public void SetTag(object owner, long value)
    {
        for (int i = 0; i < TagArray.Length; i++)
        {
            if (_tagOwners[i] == null || ReferenceEquals(_tagOwners[i], owner))
            {
                _tagOwners[i] = owner;
                _tagValues[i] = value;
                return;
            }
        }
        throw new InvalidOperationException("more than 8 hooks tagged one request");
    }

    /// <summary>Reads a value set by <see cref="SetTag"/> for <paramref name="owner"/>.</summary>
    public bool TryGetTag(object owner, out long value)
    {
        for (int i = 0; i < TagArray.Length && _tagOwners[i] != null; i++)
        {
            if (ReferenceEquals(_tagOwners[i], owner)) { value = _tagValues[i]; return true; }
        }
        value = 0;
        return false;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Session?.Name}#{Id} {Operation} sector {Sector}+{SectorCount} ({SegmentCount} seg) {Status}";

    // ---- runtime and transport plumbing ----

    /// <summary>Index of the next request hook to run.</summary>
    internal int NextHook;

    /// <summary>Where the request is in its life (see <see cref="RequestState"/>).</summary>
    internal int State;

    /// <summary>Status carried by a queued injection.</summary>
    internal BlkifStatus PendingStatus;

    /// <summary>
    /// True when this read may be answered by naming where its bytes lie in a file (<see cref="ReferenceFile"/>)
    /// instead of copying them into the segments: its transport sends file ranges itself (the NBD export, with
    /// sendfile), and no other hook can see the data, because the hook serving it is the runtime's only request hook and
    /// there are no response hooks. Set by the runtime before the first hook runs; never true for a ring's request.
    /// </summary>
    public bool FileReferenceAllowed { get; internal set; }

    /// <summary>The file named by <see cref="ReferenceFile"/> (null: the data, if any, is in the segments).</summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle? FileReference { get; private set; }

    /// <summary>Byte offset in <see cref="FileReference"/> of the request's first byte.</summary>
    public long FileReferenceOffset { get; private set; }

    /// <summary>
    /// Loop thread, by the hook answering a read whose <see cref="FileReferenceAllowed"/> is true: the request's
    /// <see cref="ByteCount"/> bytes are <paramref name="file"/>'s from <paramref name="offset"/>; the segments are left
    /// as they are. The file must live in memory (the transport's send must not wait for a disk) and stay open until
    /// the request's session detaches.
    /// </summary>
    /// <exception cref="InvalidOperationException">The request does not allow a reference.</exception>
    public void ReferenceFile(Microsoft.Win32.SafeHandles.SafeFileHandle file, long offset)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!FileReferenceAllowed) throw new InvalidOperationException($"{this} does not allow a file reference (see FileReferenceAllowed)");
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        FileReference = file;
        FileReferenceOffset = offset;
    }

    /// <summary>A transport's private value (a mapping handle).</summary>
    internal long TransportHandle;

    /// <summary>A transport's object for this request (the buffer request it came from).</summary>
    internal object? TransportObject;

    internal void Reset(TapSession session, ulong id, BlkifOperation op, BlkifOperation wireOp, ulong sector, long timestamp)
    {
        Session = session;
        Id = id;
        Operation = op;
        WireOperation = wireOp;
        Sector = sector;
        SectorCount = 0;
        DiscardFlags = 0;
        ForceUnitAccess = false;
        Status = BlkifStatus.Okay;
        SubmitTimestamp = timestamp;
        SegmentCount = 0;
        ByteCount = 0;
        NextHook = 0;
        TransportHandle = 0;
        TransportObject = null;
        FileReferenceAllowed = false;
        FileReference = null;
        FileReferenceOffset = 0;
        _tagOwners = default;
    }

    internal void SetDiscard(ulong sectors, byte flags) { SectorCount = sectors; DiscardFlags = flags; }

    internal void SetForceUnitAccess(bool fua) => ForceUnitAccess = fua;

    internal void AddSegment(nint address, int length)
    {
        if (SegmentCount == _segments.Length) Array.Resize(ref _segments, _segments.Length * 2);
        _segments[SegmentCount++] = new TapSegment(address, length, Sector + SectorCount);
        SectorCount += (ulong)(length / BlkifConstants.SectorSize);
        ByteCount += length;
    }

    internal void Release()
    {
        Session = null!;
        FileReference = null;
        _tagOwners = default;
        SegmentCount = 0;
    }

    [InlineArray(Length)]
    private struct TagArray { public const int Length = 8; private object? _e0; }

    [InlineArray(8)]
    private struct LongArray { private long _e0; }
}

/// <summary>Life states of a pooled request.</summary>
internal static class RequestState
{
    public const int Free = 0, InHooks = 1, Stolen = 2, AtBackend = 3, Completing = 4, EarlyInject = 5, EarlyResume = 6;
}
