using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>
/// The errno values this assembly reacts to, and the ONE place errno becomes an exception.
/// </summary>
/// <remarks>NOTE: numbers from Linux asm-generic/errno-base.h and errno.h (x86_64 and aarch64 share them).</remarks>
internal static class Errno
{
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int EPERM = 1;
    public const int ESRCH = 3;
    public const int EOPNOTSUPP = 95;

    /// <summary>The errno of the last native call made with <c>SetLastError = true</c> on this thread.</summary>
    public static int Last => Marshal.GetLastPInvokeError();

    /// <summary>Builds the exception for the errno left by <paramref name="call"/>.</summary>
    public static XenInteropException Exception(string call, string? detail = null) =>
        new(call, Marshal.GetLastPInvokeError(), detail);

    /// <summary>Builds the exception for an explicit errno (e.g. a negative return value).</summary>
    public static XenInteropException Exception(string call, int errno, string? detail) => new(call, errno, detail);
}
