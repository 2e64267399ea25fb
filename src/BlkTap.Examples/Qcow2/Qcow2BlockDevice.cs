namespace BlkTap.Examples.Qcow2;

/// <summary>
/// A <see cref="Qcow2Image"/> as an <see cref="IBlockDevice"/>: sector addressing, statuses instead of exceptions,
/// and a report of each failure (the tap's runtime diagnostics).
/// </summary>
/// <remarks>Threading: one thread (the tap's loop), as the image. Owns the image.</remarks>
public sealed class Qcow2BlockDevice(Qcow2Image image, Action<string>? report = null) : IBlockDevice
{
    /// <summary>The image served.</summary>
    public Qcow2Image Image { get; } = image;
    /// <inheritdoc/>
    public ulong SectorCount => (ulong)Image.Size / BlkifConstants.SectorSize;
    /// <inheritdoc/>
    public bool ReadOnly => Image.ReadOnly;
    /// <inheritdoc/>
    public bool SupportsDiscard => !Image.ReadOnly;

    /// <inheritdoc/>
    public BlkifStatus Read(ulong sector, Span<byte> buffer) =>
        Guard(sector, (ulong)buffer.Length, "read", buffer, static (img, at, b) => img.ReadAt(at, b));

    /// <inheritdoc/>
    public BlkifStatus Write(ulong sector, ReadOnlySpan<byte> data)
    {
        if (ReadOnly) return BlkifStatus.Error;
        return Guard(sector, (ulong)data.Length, "write", data, static (img, at, d) => img.WriteAt(at, d));
    }

    /// <inheritdoc/>
    public BlkifStatus Flush()
    {
        try { Image.Flush(); return BlkifStatus.Okay; }
        catch (Exception ex) when (ex is IOException or Qcow2FormatException or ObjectDisposedException) { report?.Invoke($"qcow2: flush of '{Image.Path}': {ex.Message}"); return BlkifStatus.Error; }
    }

    /// <inheritdoc/>
    public BlkifStatus Discard(ulong sector, ulong count)
    {
        if (ReadOnly) return BlkifStatus.NotSupported;
        if (!BlkifValidation.InRange(sector, count, SectorCount)) return BlkifStatus.Error;
        try { Image.Discard((long)sector * BlkifConstants.SectorSize, (long)count * BlkifConstants.SectorSize); return BlkifStatus.Okay; }
        catch (Exception ex) when (ex is IOException or Qcow2FormatException or ArgumentOutOfRangeException) { report?.Invoke($"qcow2: discard of '{Image.Path}': {ex.Message}"); return BlkifStatus.Error; }
    }

    private delegate void SpanAction<TSpan>(Qcow2Image image, long offset, TSpan span) where TSpan : allows ref struct;

    private BlkifStatus Guard<TSpan>(ulong sector, ulong bytes, string what, TSpan span, SpanAction<TSpan> action) where TSpan : allows ref struct
    {
        if (bytes % BlkifConstants.SectorSize != 0 || !BlkifValidation.InRange(sector, bytes / BlkifConstants.SectorSize, SectorCount)) return BlkifStatus.Error;
        try { action(Image, (long)sector * BlkifConstants.SectorSize, span); return BlkifStatus.Okay; }
        catch (Exception ex) when (ex is IOException or Qcow2FormatException or ArgumentOutOfRangeException or ObjectDisposedException)
        {
            report?.Invoke($"qcow2: {what} at sector {sector} of '{Image.Path}': {ex.Message}");
            return BlkifStatus.Error;
        }
    }

    /// <inheritdoc/>
    public void Dispose() => Image.Dispose();
}
