using System.Security.Cryptography;
using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// <c>crypt</c>: transparent XTS-AES disk encryption (the first use the 2005 Xen blktap names, "to encrypt
/// data": Xen's <c>tools/blktap/README</c>). Each 512-byte sector is encrypted with its sector number as
/// tweak (dm-crypt <c>aes-xts-plain64</c> layout), so the disk below holds ciphertext and the guest sees
/// plaintext.
/// </summary>
public sealed class CryptTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "crypt";
    /// <inheritdoc/>
    public string Description => "XTS-AES per-sector encryption (key file: 32 bytes AES-128, 64 bytes AES-256)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("keyfile", "file holding the raw XTS key: 32 bytes (AES-128-XTS) or 64 bytes (AES-256-XTS)", Required: true),
        new("discard", "pass discards to the disk (default false: like dm-crypt without allow_discards, discard is not offered)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var path = spec.Require("keyfile");
        byte[] key;
        try { key = File.ReadAllBytes(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        { throw new ChainSpecException($"tap 'crypt': cannot read key file '{path}': {ex.Message}"); }
        try
        {
            if (key.Length != 32 && key.Length != 64)
                throw new ChainSpecException($"tap 'crypt': key file '{path}' holds {key.Length} bytes; need 32 (AES-128-XTS) or 64 (AES-256-XTS)");
            // NOTE: IEEE 1619-2007 section 5.1 requires Key1 and Key2 to differ (SP 800-38E likewise).
            if (CryptographicOperations.FixedTimeEquals(key.AsSpan(0, key.Length / 2), key.AsSpan(key.Length / 2)))
                throw new ChainSpecException($"tap 'crypt': key file '{path}': its two halves (Key1, Key2) are equal, which IEEE 1619 forbids");
            return new CryptTap(key, spec.GetBool("discard", false));
        }
        finally { CryptographicOperations.ZeroMemory(key); }
    }
}

/// <summary>The <c>crypt</c> tap.</summary>
/// <remarks>
/// <para>Writes are encrypted into the tap's own bounce pages, never in the guest's pages: on real Xen a
/// write's data is granted and mapped read-only (an in-place encryption killed <c>xen serve</c> with
/// SIGSEGV in the Xen lab), and the guest's buffer must not change under a write. The request hook copies
/// each segment into a bounce page, encrypts it there and redirects the segment to it
/// (<see cref="TapRequest.RedirectSegment"/>), so the taps below and the disk see ciphertext; the response
/// hook gives the pages back. The pages are pooled (4 KiB each, reused: no allocation per request in steady
/// state). Reads pass and are decrypted in place on OKAY (read data is granted writable).</para>
/// <para>Only requests that went through this tap's request hook are transformed (a tag marks them), so
/// an answer produced above the tap (an error, a cache hit) is left alone.</para>
/// <para>Discard: by default the tap withdraws feature-discard at attach and answers any discard with
/// EOPNOTSUPP, as dm-crypt does without <c>allow_discards</c> (discards reveal which sectors are in
/// use). With discards allowed they pass through, and a sector that reads back as all zero bytes of
/// ciphertext (a discarded sector of a disk that zeroes, or a never-written sparse image) is returned
/// as zeros instead of being decrypted into noise; a real ciphertext sector is all zero with
/// probability 2^-4096.</para>
/// <para>Threading: hooks on the loop thread only; the cipher is not shared with other threads.</para>
/// </remarks>
public sealed class CryptTap : TapBase, IRequestHook, IResponseHook, IControlHook
{
    private const long TagRead = -1;
    private readonly XtsAes _xts;
    private readonly bool _allowDiscard;
    private readonly BouncePages _bounce = new();

    /// <summary>
    /// Creates the tap with the XTS key (Key1 then Key2, 32 or 64 bytes, halves different);
    /// <paramref name="allowDiscard"/> passes discards through (see remarks).
    /// </summary>
    public CryptTap(ReadOnlySpan<byte> key, bool allowDiscard = false) : base("crypt")
    {
        _allowDiscard = allowDiscard;
        if (key.Length is 32 or 64 && key[..(key.Length / 2)].SequenceEqual(key[(key.Length / 2)..]))
            throw new ArgumentException("XTS Key1 and Key2 must differ (IEEE 1619)", nameof(key));
        _xts = new XtsAes(key);
    }

    /// <summary>Key bits (128 or 256).</summary>
    public int KeyBits => _xts.KeyBits;

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        switch (request.Operation)
        {
            case BlkifOperation.Write:
            case BlkifOperation.WriteBarrier:
                if (!request.HasData) return HookResult.Pass;
                request.SetTag(this, _bounce.Redirect(request, static (xts, span, sector) => xts.EncryptSectors(span, sector), _xts));
                return HookResult.Pass;
            case BlkifOperation.Read:
                request.SetTag(this, TagRead);
                return HookResult.Pass;
            case BlkifOperation.Discard when !_allowDiscard:
                request.Status = BlkifStatus.NotSupported;
                return HookResult.Respond;
            default:
                return HookResult.Pass;
        }
    }

    /// <inheritdoc/>
    public void OnResponse(TapRequest request)
    {
        if (!request.TryGetTag(this, out long tag)) return;
        // A write's bounce pages go back whatever the status (the guest's pages were never written);
        // reads are decrypted only when the data is real.
        if (tag != TagRead) { _bounce.Release(tag); return; }
        if (request.Status != BlkifStatus.Okay) return;
        bool zeroIsZero = _allowDiscard;
        foreach (var s in request.Segments)
        {
            var span = s.Span;
            for (int at = 0; at < span.Length; at += BlkifConstants.SectorSize)
            {
                var sector = span.Slice(at, BlkifConstants.SectorSize);
                if (zeroIsZero && !sector.ContainsAnyExcept((byte)0)) continue;
                _xts.DecryptSectors(sector, s.Sector + (ulong)(at / BlkifConstants.SectorSize));
            }
        }
    }

    /// <inheritdoc/>
    public void OnControl(ControlEvent controlEvent)
    {
        // Control hooks run terminator-first (TapChain.Register), so the disk below has already said
        // whether it discards; without allow, the frontend is never offered feature-discard.
        if (controlEvent.Kind == ControlEventKind.Attach && !_allowDiscard) controlEvent.Session.SupportsDiscard = false;
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _xts.Dispose();
        _bounce.Dispose();
        base.Dispose();
    }
}
