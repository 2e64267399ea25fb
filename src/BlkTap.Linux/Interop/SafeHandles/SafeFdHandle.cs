using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary>An owned Unix file descriptor; -1 is invalid. Closed exactly once on dispose or finalization.</summary>
internal sealed class SafeFdHandle : SafeHandle
{
    /// <summary>Used by the P/Invoke marshaller for returned descriptors.</summary>
    public SafeFdHandle() : base(-1, ownsHandle: true) { }

    /// <summary>Takes ownership of <paramref name="fd"/>.</summary>
    public SafeFdHandle(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    /// <inheritdoc />
    public override bool IsInvalid => handle == -1;

    /// <summary>The raw descriptor (valid only while the handle is alive).</summary>
    public int Fd => (int)handle;

    /// <inheritdoc />
    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}
