using System.Buffers.Binary;
using System.Net.Sockets;
using BlkTap.Linux;

namespace BlkTap.Emulator.Internal;

/// <summary>
/// A session's shared memory: (1 + N) pages the server creates as a sealed memfd, page 0 the ring (initialised
/// here, SHARED_RING_INIT), page g grant reference g; its descriptor goes to the frontend with the
/// <c>connected</c> line.
/// </summary>
/// <remarks>
/// Threading: <see cref="Create"/> and <see cref="Dispose"/> on one thread; <see cref="Address"/> may be read
/// from any thread while the object is alive. The owner disposes it only once no request of its session is in
/// flight (the runtime's <c>InFlight</c> is 0), so no hook holds a page.
/// NOTE: docs/shmring.md ("Who owns the memory"): the server, not the frontend, creates the file and seals its
/// size (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) before anyone else can reach it. A file the frontend owned
/// could be truncated under this mapping, and the next touch of a page past the new end raises SIGBUS, which
/// kills the process (no check before an access closes that race, and Linux offers no way to pin the size of
/// a file another process owns). Sealed, the frontend's ftruncate fails with EPERM and no page can go away.
/// </remarks>
internal sealed class ShmringMemory : IDisposable
{
    private readonly SealedSharedMemory _memory;
    private int _disposed;

    private ShmringMemory(SealedSharedMemory memory, uint grantPages)
    {
        _memory = memory;
        GrantPages = grantPages;
    }

    /// <summary>The address of page 0 (the ring).</summary>
    public nint Address => _memory.Address;

    /// <summary>N: pages 1..N are granted.</summary>
    public uint GrantPages { get; }

    /// <summary>Bytes mapped: (1 + N) pages.</summary>
    public long Length => _memory.Length;

    /// <summary>
    /// Creates the sealed memory for (1 + <paramref name="grantPages"/>) pages and runs SHARED_RING_INIT on
    /// page 0. Returns null and a reason when the system refuses the memory (out of memory or descriptors).
    /// </summary>
    public static unsafe ShmringMemory? Create(string name, uint grantPages, out string? error)
    {
        long bytes = (1L + grantPages) * ShmringProtocol.PageSize;
        try
        {
            var memory = SealedSharedMemory.Create(name, bytes);
            // NOTE: xen/io/ring.h SHARED_RING_INIT: req_prod = rsp_prod = 0, req_event = rsp_event = 1, the rest
            // zero (a new memfd is zero-filled). Offsets 0, 4, 8, 12 on both ABIs.
            var ring = new Span<byte>((void*)memory.Address, 16);
            BinaryPrimitives.WriteUInt32LittleEndian(ring[4..], 1);
            BinaryPrimitives.WriteUInt32LittleEndian(ring[12..], 1);
            error = null;
            return new ShmringMemory(memory, grantPages);
        }
        catch (IOException ex)
        {
            error = $"cannot create the shared memory ({1L + grantPages} pages): {ex.Message}";
            return null;
        }
    }

    /// <summary>Sends <paramref name="line"/> with the memory's descriptor attached (SCM_RIGHTS); returns the bytes sent.</summary>
    public int SendWithDescriptor(Socket connection, ReadOnlySpan<byte> line) => _memory.SendWithDescriptor(connection, line);

    /// <summary>Unmaps the memory and closes this process's descriptor of it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _memory.Dispose();
    }
}
