using System.Runtime.InteropServices;

namespace BlkTap.Xen;

/// <summary>
/// A native call into libc or a Xen library failed. Carries the call name, the errno value and its strerror
/// text. Thread-safe (immutable).
/// </summary>
public sealed class XenInteropException : IOException
{
    /// <summary>Creates the exception for <paramref name="call"/> failing with <paramref name="errno"/>.</summary>
    /// <param name="call">The native function, e.g. <c>xs_read</c> or <c>ioctl(IOCTL_GNTDEV_MAP_GRANT_REF)</c>.</param>
    /// <param name="errno">The errno value the call left.</param>
    /// <param name="detail">What the call was about (a path, a port), or null.</param>
    public XenInteropException(string call, int errno, string? detail = null)
        : base(Format(call, errno, detail))
    {
        Call = call;
        Errno = errno;
        ErrorText = Marshal.GetPInvokeErrorMessage(errno);
        HResult = errno;
    }

    /// <summary>The native function that failed.</summary>
    public string Call { get; }

    /// <summary>The errno value (Linux numbering).</summary>
    public int Errno { get; }

    /// <summary>strerror(<see cref="Errno"/>).</summary>
    public string ErrorText { get; }

    private static string Format(string call, int errno, string? detail) =>
        detail is null
            ? $"{call} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})"
            : $"{call} failed for {detail}: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";
}
