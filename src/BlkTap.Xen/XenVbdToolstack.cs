using System.Globalization;
using BlkTap.Xen.Internal;

namespace BlkTap.Xen;

/// <summary>What <c>blktap xen attach</c> connects: a guest disk backed by the served tap.</summary>
/// <param name="FrontendDomain">The guest's domain id.</param>
/// <param name="VirtualDevice">The guest's name for the disk (<c>xvdb</c>) or a device number.</param>
/// <param name="Params">The image identifier handed to the chain at attach (xenstore <c>params</c>).</param>
public sealed record XenVbdAttachment(ushort FrontendDomain, string VirtualDevice, string Params)
{
    /// <summary>The domain the backend runs in.</summary>
    public ushort BackendDomain { get; init; }
    /// <summary>The backend device type (the directory under <c>backend/</c>) the tap serves: "vbd3" or "vbd".</summary>
    public string DeviceType { get; init; } = "vbd3";
    /// <summary>Attach read-only (<c>mode</c> = r).</summary>
    public bool ReadOnly { get; init; }
}

/// <summary>The xenstore directories of an attached disk.</summary>
/// <param name="FrontendPath"><c>/local/domain/&lt;fe&gt;/device/vbd/&lt;devnum&gt;</c>.</param>
/// <param name="BackendPath"><c>/local/domain/&lt;be&gt;/backend/&lt;type&gt;/&lt;fe&gt;/&lt;devnum&gt;</c>.</param>
/// <param name="DeviceNumber">The xenbus device number.</param>
public readonly record struct XenVbdNodes(string FrontendPath, string BackendPath, int DeviceNumber);

/// <summary>Thrown when an attach or detach cannot be done as asked (device exists, no such device, bad name).</summary>
public sealed class XenToolstackException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public XenToolstackException(string message) : base(message) { }
}

/// <summary>
/// The toolstack's half of a disk for a tap-served backend: writes (and removes) the frontend and backend
/// directories the way libxl does, so the guest's blkfront and our <see cref="XenbusBlockBackend"/> meet.
/// </summary>
/// <remarks>
/// NOTE: layout and permissions after libxl (libxl_device.c libxl__device_generic_add, libxl_disk.c
/// device_disk_add; docs/misc/xenstore-paths.pandoc): the frontend lives under <c>device/vbd</c> whatever the
/// backend type (libxl's device kind vs. backend kind, so the guest's blkfront finds it); the frontend directory
/// is owned by the guest with read access for the backend domain; the backend directory is owned by the backend
/// domain with read access for the guest. Both are written in one transaction on the real store.
/// Threading: stateless; the <see cref="IXenStore"/> given decides.
/// </remarks>
public static class XenVbdToolstack
{
    /// <summary>Sets a node's permission list; a no-op where the store has no permissions (the emulator).</summary>
    public delegate void PermissionSetter(string path, XenStorePermission[] permissions);

    /// <summary>The directories <paramref name="attachment"/> uses.</summary>
    /// <exception cref="XenToolstackException">The virtual device name or a domain id is not usable.</exception>
    public static XenVbdNodes PathsFor(XenVbdAttachment attachment)
    {
        ArgumentNullException.ThrowIfNull(attachment);
        if (!XenVirtualDevice.TryParse(attachment.VirtualDevice, out var devnum, out var error)) throw new XenToolstackException(error!);
        return PathsFor(attachment.FrontendDomain, attachment.BackendDomain, attachment.DeviceType, devnum);
    }

    /// <summary>The directories of device <paramref name="deviceNumber"/>.</summary>
    /// <exception cref="XenToolstackException">A domain id is reserved, or the device type is not a plain name.</exception>
    public static XenVbdNodes PathsFor(ushort frontendDomain, ushort backendDomain, string deviceType, int deviceNumber)
    {
        if (!XenDomainIds.IsValid(frontendDomain)) throw new XenToolstackException($"domain {frontendDomain} is a reserved domain id");
        if (!XenDomainIds.IsValid(backendDomain)) throw new XenToolstackException($"backend domain {backendDomain} is a reserved domain id");
        if (string.IsNullOrEmpty(deviceType) || deviceType.Contains('/') || deviceType.Contains('\0'))
            throw new XenToolstackException($"device type '{deviceType}' is not a plain name (use vbd3 or vbd)");
        var inv = CultureInfo.InvariantCulture;
        return new XenVbdNodes(
            string.Create(inv, $"/local/domain/{frontendDomain}/device/vbd/{deviceNumber}"),
            string.Create(inv, $"/local/domain/{backendDomain}/backend/{deviceType}/{frontendDomain}/{deviceNumber}"),
            deviceNumber);
    }

    /// <summary>
    /// Writes every node of a new disk into <paramref name="store"/> (call it inside a transaction on the real
    /// store: <see cref="Attach(XenStore, XenVbdAttachment)"/> does). Refuses a device whose frontend or backend
    /// directory already exists.
    /// </summary>
    /// <exception cref="XenToolstackException">The name is bad, the params are empty, or the device exists.</exception>
    public static XenVbdNodes WriteAttach(IXenStore store, XenVbdAttachment attachment, PermissionSetter? setPermissions = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        var nodes = PathsFor(attachment);
        if (string.IsNullOrEmpty(attachment.Params) || attachment.Params.Contains('\0'))
            throw new XenToolstackException("--params is empty (name the image the chain should open)");
        if (store.Read(nodes.FrontendPath + "/state") != null || store.Directory(nodes.FrontendPath).Count > 0)
            throw new XenToolstackException($"domain {attachment.FrontendDomain} already has device {attachment.VirtualDevice} ({nodes.FrontendPath} exists); detach it first");
        if (store.Directory(nodes.BackendPath).Count > 0)
            throw new XenToolstackException($"{nodes.BackendPath} already exists; detach it first");
        var inv = CultureInfo.InvariantCulture;
        string fe = nodes.FrontendPath, be = nodes.BackendPath;
        string init = ((int)XenbusState.Initialising).ToString(inv);

        store.Write(be, "");
        setPermissions?.Invoke(be, [new(attachment.BackendDomain, XenStoreAccess.None), new(attachment.FrontendDomain, XenStoreAccess.Read)]);
        store.Write(be + "/frontend", fe);
        store.Write(be + "/frontend-id", attachment.FrontendDomain.ToString(inv));
        store.Write(be + "/online", "1");
        store.Write(be + "/removable", "0");
        store.Write(be + "/bootable", "1");
        store.Write(be + "/dev", attachment.VirtualDevice);
        store.Write(be + "/type", "tap");
        store.Write(be + "/mode", attachment.ReadOnly ? "r" : "w");
        store.Write(be + "/device-type", "disk");
        store.Write(be + "/params", attachment.Params);

        store.Write(fe, "");
        setPermissions?.Invoke(fe, [new(attachment.FrontendDomain, XenStoreAccess.None), new(attachment.BackendDomain, XenStoreAccess.Read)]);
        store.Write(fe + "/backend", be);
        store.Write(fe + "/backend-id", attachment.BackendDomain.ToString(inv));
        store.Write(fe + "/virtual-device", nodes.DeviceNumber.ToString(inv));
        store.Write(fe + "/device-type", "disk");
        // NOTE: outside a transaction (the emulator's store, a toolstack without one) a backend or frontend may
        // react to each write as it lands; both wait for their 'state' node (xen-blkback and XenbusBlockBackend
        // read 'mode' and 'params' once 'state' is there), so each directory's 'state' is written after every
        // other node, and the backend's last of all, once the frontend it names is complete.
        store.Write(fe + "/state", init);
        store.Write(be + "/state", init);
        return nodes;
    }

    /// <summary>Writes a new disk's nodes into the real xenstore, with permissions, in one transaction.</summary>
    /// <exception cref="XenToolstackException">The name is bad or the device exists.</exception>
    /// <exception cref="XenInteropException">xenstore refused a write or the transaction.</exception>
    public static XenVbdNodes Attach(XenStore store, XenVbdAttachment attachment)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.Transact(tx => WriteAttach(new TransactionXenStore(tx), attachment, (p, perms) => tx.SetPermissions(p, perms)));
    }

    /// <summary>
    /// Asks the backend to let go of a disk, as libxl's device removal does: backend <c>online</c> = 0 and
    /// <c>state</c> = Closing (5). The guest's blkfront closes, the backend follows to Closed (6) and does not
    /// reconnect; then <see cref="RemoveNodes"/> deletes the directories.
    /// </summary>
    /// <exception cref="XenToolstackException">No such device.</exception>
    public static XenVbdNodes WriteDetachRequest(IXenStore store, XenVbdNodes nodes)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (store.Read(nodes.BackendPath + "/frontend") == null)
            throw new XenToolstackException($"no such device: {nodes.BackendPath} does not exist");
        store.Write(nodes.BackendPath + "/online", "0");
        // NOTE: libxl__initiate_device_generic_remove writes the backend's state = 5 (XenbusStateClosing).
        store.Write(nodes.BackendPath + "/state", ((int)XenbusState.Closing).ToString(CultureInfo.InvariantCulture));
        return nodes;
    }

    /// <summary>Writes the detach request (<see cref="WriteDetachRequest"/>) into the real xenstore in one transaction.</summary>
    /// <exception cref="XenToolstackException">No such device.</exception>
    /// <exception cref="XenInteropException">xenstore refused a write or the transaction.</exception>
    public static XenVbdNodes RequestDetach(XenStore store, XenVbdNodes nodes)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.Transact(tx => WriteDetachRequest(new TransactionXenStore(tx), nodes));
    }

    /// <summary>Whether the backend reached Closed (or is gone), i.e. the directories may be removed.</summary>
    public static bool IsReleased(IXenStore store, XenVbdNodes nodes)
    {
        ArgumentNullException.ThrowIfNull(store);
        var state = store.Read(nodes.BackendPath + "/state");
        return state == null || state == ((int)XenbusState.Closed).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Removes the frontend and backend directories (frontend first, so the guest lets go of its view).</summary>
    public static void RemoveNodes(IXenStore store, XenVbdNodes nodes)
    {
        ArgumentNullException.ThrowIfNull(store);
        store.Remove(nodes.FrontendPath);
        store.Remove(nodes.BackendPath);
    }
}
