using System.Runtime.InteropServices;

namespace BlkTap.Linux;

/// <summary>One piece of a gathered write: <see cref="Length"/> bytes at <see cref="Address"/> (a <c>struct iovec</c>).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoSegment
{
    /// <summary>Address of the bytes (native or pinned memory that stays valid during the call).</summary>
    public nint Address;
    /// <summary>Number of bytes.</summary>
    public nint Length;
}
