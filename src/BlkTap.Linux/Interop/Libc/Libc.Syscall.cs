using System.Runtime.InteropServices;

namespace BlkTap.Linux.Interop;

internal static partial class Libc
{
    // NOTE: unistd.h declares syscall(long, ...); every argument is passed as a long. Variadic integer arguments travel
    // in the same registers as fixed ones on x86_64 (SysV) and aarch64 Linux (AAPCS64), so a fixed six-argument binding
    // is the same call.
    [LibraryImport(Libraries.Libc, EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallRaw(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    // NOTE: asm-generic/unistd.h: __NR_io_uring_setup 425, __NR_io_uring_enter 426, the same on x86_64 and aarch64
    // (numbers from 424 up are shared by every architecture).
    public const long SYS_io_uring_setup = 425;
    public const long SYS_io_uring_enter = 426;

    /// <summary>io_uring_setup(2): the ring's descriptor, or minus the errno (ENOSYS, EPERM when io_uring is disabled).</summary>
    public static unsafe int IoUringSetup(uint entries, IoUringParams* parameters)
    {
        long rc = SyscallRaw(SYS_io_uring_setup, entries, (long)parameters, 0, 0, 0, 0);
        return rc >= 0 ? (int)rc : -Errno.Last;
    }

    /// <summary>
    /// io_uring_enter(2) without a signal mask: submits <paramref name="toSubmit"/> entries and, with
    /// <see cref="IoUring.IORING_ENTER_GETEVENTS"/>, waits for <paramref name="minComplete"/> completions. Returns the
    /// number submitted, or minus the errno (EINTR is the caller's to retry).
    /// </summary>
    public static int IoUringEnter(int ringFd, uint toSubmit, uint minComplete, uint flags)
    {
        long rc = SyscallRaw(SYS_io_uring_enter, ringFd, toSubmit, minComplete, flags, 0, 0);
        return rc >= 0 ? (int)rc : -Errno.Last;
    }
}
