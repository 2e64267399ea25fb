namespace BlkTap.Xen;

/// <summary>
/// This machine is not a Xen dom0 (or lacks the Xen device nodes or libraries), so a real-Xen object cannot be
/// opened. The message names what is missing and what to do. Thread-safe (immutable).
/// </summary>
public sealed class XenNotAvailableException : PlatformNotSupportedException
{
    /// <summary>Creates the exception with a message naming the missing piece.</summary>
    public XenNotAvailableException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the underlying failure.</summary>
    public XenNotAvailableException(string message, Exception inner) : base(message, inner) { }
}
