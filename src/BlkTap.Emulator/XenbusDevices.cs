using System.Globalization;

namespace BlkTap.Emulator;

/// <summary>The xenstore directories of one virtual block device.</summary>
/// <param name="FrontendPath"><c>/local/domain/&lt;fe&gt;/device/vbd/&lt;devid&gt;</c>.</param>
/// <param name="BackendPath"><c>/local/domain/&lt;be&gt;/backend/vbd/&lt;fe&gt;/&lt;devid&gt;</c>.</param>
public readonly record struct VbdPaths(string FrontendPath, string BackendPath);

/// <summary>
/// The toolstack's part of a xenbus block device: paths, initial nodes, state nodes. Works on any
/// <see cref="IXenStore"/>. Stateless: thread-safe.
/// </summary>
/// <remarks>
/// NOTE: layout as libxl writes it (docs/misc/xenstore-paths.pandoc, "Backend" and "Device" sections);
/// states are decimal <see cref="XenbusState"/> values (xen/include/public/io/xenbus.h).
/// </remarks>
public static class XenbusDevices
{
    /// <summary>The frontend directory of a vbd.</summary>
    public static string FrontendPath(ushort frontendDomain, int deviceId) =>
        string.Create(CultureInfo.InvariantCulture, $"/local/domain/{frontendDomain}/device/vbd/{deviceId}");

    /// <summary>The backend directory of a vbd.</summary>
    public static string BackendPath(ushort backendDomain, ushort frontendDomain, int deviceId) =>
        string.Create(CultureInfo.InvariantCulture, $"/local/domain/{backendDomain}/backend/vbd/{frontendDomain}/{deviceId}");

    /// <summary>
    /// Writes the nodes the toolstack creates for a new vbd: in the frontend directory <c>backend</c>,
    /// <c>backend-id</c>, <c>virtual-device</c>, <c>state</c>=1; in the backend directory
    /// <c>frontend</c>, <c>frontend-id</c>, <c>params</c>, <c>mode</c>, <c>device-type</c>,
    /// <c>online</c>, <c>state</c>=1. The backend directory is written first, so a frontend that sees its
    /// directory finds the backend's.
    /// </summary>
    /// <param name="store">The xenstore.</param>
    /// <param name="frontendDomain">The guest's domain id.</param>
    /// <param name="backendDomain">The domain the backend runs in (usually 0).</param>
    /// <param name="deviceId">The device id (e.g. 51712 for xvda).</param>
    /// <param name="parameters">The image identifier the backend opens (<c>params</c>).</param>
    /// <param name="readOnly">Writes <c>mode</c>=r instead of w.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="deviceId"/> is negative.</exception>
    public static VbdPaths CreateVbd(IXenStore store, ushort frontendDomain, ushort backendDomain, int deviceId, string parameters, bool readOnly = false)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentOutOfRangeException.ThrowIfNegative(deviceId);
        var fe = FrontendPath(frontendDomain, deviceId);
        var be = BackendPath(backendDomain, frontendDomain, deviceId);
        var inv = CultureInfo.InvariantCulture;
        store.Write(be + "/frontend", fe);
        store.Write(be + "/frontend-id", frontendDomain.ToString(inv));
        store.Write(be + "/params", parameters);
        store.Write(be + "/mode", readOnly ? "r" : "w");
        store.Write(be + "/device-type", "disk");
        store.Write(be + "/online", "1");
        WriteState(store, be, XenbusState.Initialising);
        store.Write(fe + "/backend", be);
        store.Write(fe + "/backend-id", backendDomain.ToString(inv));
        store.Write(fe + "/virtual-device", deviceId.ToString(inv));
        WriteState(store, fe, XenbusState.Initialising);
        return new VbdPaths(fe, be);
    }

    /// <summary>Reads <c>directory/state</c>; <see cref="XenbusState.Unknown"/> when missing or not a number.</summary>
    public static XenbusState ReadState(IXenStore store, string directory)
    {
        ArgumentNullException.ThrowIfNull(store);
        var text = store.Read(directory + "/state");
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v is >= 0 and <= 8
            ? (XenbusState)v
            : XenbusState.Unknown;
    }

    /// <summary>Writes <c>directory/state</c> as a decimal number.</summary>
    public static void WriteState(IXenStore store, string directory, XenbusState state)
    {
        ArgumentNullException.ThrowIfNull(store);
        store.Write(directory + "/state", ((int)state).ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Reads an unsigned decimal node; <paramref name="fallback"/> when missing or malformed (like xenbus_read_unsigned).</summary>
    public static ulong ReadUnsigned(IXenStore store, string path, ulong fallback)
    {
        ArgumentNullException.ThrowIfNull(store);
        return ulong.TryParse(store.Read(path), NumberStyles.None, CultureInfo.InvariantCulture, out ulong v) ? v : fallback;
    }
}
