using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

/// <summary>
/// The errno values the Linux and Xen assemblies react to, and the ONE place an errno becomes an exception or a
/// message. Thread-safe (stateless; <see cref="Last"/> reads the calling thread's saved errno).
/// </summary>
/// <remarks>NOTE: numbers from Linux asm-generic/errno-base.h and asm-generic/errno.h (x86_64 and aarch64 share them).</remarks>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int ENOTDIR = 20;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int EPIPE = 32;
    public const int EOPNOTSUPP = 95;
    public const int ECONNRESET = 104;

    /// <summary>The errno of the last native call made with <c>SetLastError = true</c> on this thread.</summary>
    public static int Last => Marshal.GetLastPInvokeError();

    /// <summary>Builds the exception for the errno left by <paramref name="call"/>.</summary>
    public static LinuxInteropException Exception(string call, string? detail = null) =>
        new(call, Marshal.GetLastPInvokeError(), detail);

    /// <summary>Builds the exception for an explicit errno (e.g. a negative return value or fsync's result).</summary>
    public static LinuxInteropException Exception(string call, int errno, string? detail) => new(call, errno, detail);

    /// <summary>strerror(<paramref name="errno"/>).</summary>
    public static string Text(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>
    /// The message of an exception for <paramref name="call"/> failing with <paramref name="errno"/>:
    /// <c>CALL failed[ for DETAIL]: errno N (strerror)</c>.
    /// </summary>
    public static string Message(string call, int errno, string? detail) =>
        detail is null
            ? $"{call} failed: errno {errno} ({Text(errno)})"
            : $"{call} failed for {detail}: errno {errno} ({Text(errno)})";

    /// <summary>
    /// A short name for an errno that a socket loop reports (for example "EPIPE (the peer closed the connection)"),
    /// or "errno N" for the others.
    /// </summary>
    public static string Describe(long errno) => errno switch
    {
        EAGAIN => "EAGAIN",
        EPIPE => "EPIPE (the peer closed the connection)",
        ECONNRESET => "ECONNRESET (the peer reset the connection)",
        _ => $"errno {errno}",
    };
}
