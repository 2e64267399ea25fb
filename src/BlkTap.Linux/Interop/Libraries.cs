namespace BlkTap.Linux.Interop;

/// <summary>The native libraries this assembly binds.</summary>
internal static class Libraries
{
    /// <summary>The C library (resolved by the runtime to libc.so.6 on glibc).</summary>
    public const string Libc = "libc";
}
