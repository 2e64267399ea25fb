using BlkTap.Linux.Interop;

namespace BlkTap.Linux;

/// <summary>
/// A native call into libc failed. Carries the call name, the errno value and its strerror text. Thread-safe
/// (immutable). The Xen assembly's <c>XenInteropException</c> derives from it for calls into the Xen libraries and devices.
/// </summary>
public class LinuxInteropException : IOException
{
    /// <summary>Creates the exception for <paramref name="call"/> failing with <paramref name="errno"/>.</summary>
    /// <param name="call">The native function, e.g. <c>epoll_ctl(EPOLL_CTL_ADD)</c> or <c>fsync</c>.</param>
    /// <param name="errno">The errno value the call left.</param>
    /// <param name="detail">What the call was about (a path, a descriptor), or null.</param>
    public LinuxInteropException(string call, int errno, string? detail = null)
        : base(Interop.Errno.Message(call, errno, detail))
    {
        Call = call;
        Errno = errno;
        ErrorText = Interop.Errno.Text(errno);
        HResult = errno;
    }

    /// <summary>The native function that failed.</summary>
    public string Call { get; }

    /// <summary>The errno value (Linux numbering).</summary>
    public int Errno { get; }

    /// <summary>strerror(<see cref="Errno"/>).</summary>
    public string ErrorText { get; }
}
