using BlkTap.Linux.Interop;

namespace BlkTap.Xen.Interop;

/// <summary>
/// Errno as a <see cref="XenInteropException"/> for the Xen calls; the message and the errno names come from
/// <see cref="Errno"/>, the one place an errno becomes text. Thread-safe (stateless).
/// </summary>
internal static class XenErrno
{
    /// <summary>Builds the exception for the errno left by <paramref name="call"/>.</summary>
    public static XenInteropException Exception(string call, string? detail = null) => new(call, Errno.Last, detail);

    /// <summary>Builds the exception for an explicit errno (e.g. a negative return value).</summary>
    public static XenInteropException Exception(string call, int errno, string? detail) => new(call, errno, detail);
}
