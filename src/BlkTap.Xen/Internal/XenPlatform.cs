using System.Runtime.InteropServices;

namespace BlkTap.Xen.Internal;

/// <summary>Checks that the Xen device nodes and libraries exist before any native call is made.</summary>
internal static class XenPlatform
{
    /// <summary>The xenbus device (kernel xenstore transport in dom0 and guests).</summary>
    public const string XenbusDevice = "/dev/xen/xenbus";

    /// <summary>The xenstored Unix socket (oxenstored / cxenstored in dom0).</summary>
    public static readonly string[] XenstoredSockets = ["/run/xenstored/socket", "/var/run/xenstored/socket"];

    /// <summary>Throws <see cref="XenNotAvailableException"/> unless <paramref name="device"/> exists.</summary>
    public static void RequireDevice(string device, string module)
    {
        if (!File.Exists(device))
            throw new XenNotAvailableException(
                $"Xen is not available: {device} not found; run on a Xen dom0 (with the {module} kernel module loaded)");
    }

    /// <summary>Throws unless xenstore is reachable through the xenbus device or the xenstored socket.</summary>
    public static void RequireXenStore()
    {
        if (File.Exists(XenbusDevice)) return;
        foreach (var socket in XenstoredSockets)
            if (File.Exists(socket)) return;
        throw new XenNotAvailableException(
            $"Xen is not available: {XenbusDevice} not found and no xenstored socket at {XenstoredSockets[0]}; run on a Xen dom0");
    }

    /// <summary>Throws unless the native library <paramref name="soname"/> loads.</summary>
    public static void RequireLibrary(string soname, string debianPackage)
    {
        if (!NativeLibrary.TryLoad(soname, typeof(XenPlatform).Assembly, null, out var handle))
            throw new XenNotAvailableException(
                $"Xen is not available: {soname} cannot be loaded; install the Debian package {debianPackage}");
        NativeLibrary.Free(handle);
    }
}
