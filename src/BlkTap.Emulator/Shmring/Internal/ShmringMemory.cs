using System.IO.MemoryMappedFiles;

namespace BlkTap.Emulator.Internal;

/// <summary>
/// The frontend's <c>DIR/mem</c> mapped shared (MAP_SHARED through MemoryMappedFile) into this
/// process: exactly (1 + N) pages, page 0 the ring, page g grant reference g.
/// </summary>
/// <remarks>
/// Threading: <see cref="Open"/> and <see cref="Dispose"/> on one thread; <see cref="Address"/> may be
/// read from any thread while the object is alive. The owner disposes it only once no request of
/// its session is in flight (the runtime's <c>InFlight</c> is 0), so no hook holds a page.
/// NOTE: a hostile frontend that truncates the file while it is mapped makes later accesses fault
/// (SIGBUS); Linux gives no way to pin the size of a file another process owns (seals are for memfd).
/// </remarks>
internal sealed unsafe class ShmringMemory : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _pointer;

    private ShmringMemory(MemoryMappedFile file, MemoryMappedViewAccessor view, uint grantPages)
    {
        _file = file;
        _view = view;
        GrantPages = grantPages;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p;
        Address = (nint)(p + view.PointerOffset);
    }

    /// <summary>The address of page 0 (the ring).</summary>
    public nint Address { get; }

    /// <summary>N: pages 1..N are granted.</summary>
    public uint GrantPages { get; }

    /// <summary>Bytes mapped: (1 + N) pages.</summary>
    public long Length => (1L + GrantPages) * ShmringProtocol.PageSize;

    /// <summary>
    /// Opens and maps <paramref name="path"/> for (1 + <paramref name="grantPages"/>) pages. Returns null
    /// and a reason when the file is missing, not a regular file, or shorter than that.
    /// </summary>
    public static ShmringMemory? Open(string path, uint grantPages, out string? error)
    {
        long need = (1L + grantPages) * ShmringProtocol.PageSize;
        FileStream? stream = null;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) { error = $"{path}: no such file (the frontend creates it before connecting)"; return null; }
            stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            if (!stream.CanSeek) { error = $"{path}: not a regular file"; stream.Dispose(); return null; }
            long length = stream.Length;
            if (length < need)
            {
                error = $"{path}: {length} bytes is smaller than the {1 + grantPages} pages ({need} bytes) the handshake declared";
                stream.Dispose();
                return null;
            }
            var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            stream = null;
            MemoryMappedViewAccessor view;
            try { view = file.CreateViewAccessor(0, need, MemoryMappedFileAccess.ReadWrite); }
            catch { file.Dispose(); throw; }
            error = null;
            return new ShmringMemory(file, view, grantPages);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            stream?.Dispose();
            error = $"{path}: cannot map: {ex.Message}";
            return null;
        }
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose()
    {
        if (_pointer == null) return;
        _pointer = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
