using BlkTap.Linux;

namespace BlkTap.Xen;

/// <summary>
/// A native call into a Xen library or device (or libc on its behalf) failed. Carries the call name, the errno
/// value and its strerror text (see <see cref="LinuxInteropException"/>). Thread-safe (immutable).
/// </summary>
public sealed class XenInteropException : LinuxInteropException
{
    /// <summary>Creates the exception for <paramref name="call"/> failing with <paramref name="errno"/>.</summary>
    /// <param name="call">The native function, e.g. <c>xs_read</c> or <c>ioctl(IOCTL_GNTDEV_MAP_GRANT_REF)</c>.</param>
    /// <param name="errno">The errno value the call left.</param>
    /// <param name="detail">What the call was about (a path, a port), or null.</param>
    public XenInteropException(string call, int errno, string? detail = null) : base(call, errno, detail) { }
}
