using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>A <c>struct xs_handle *</c> from xs_open; closed with xs_close.</summary>
internal sealed class SafeXenStoreHandle : SafeHandle
{
    /// <summary>Used by the P/Invoke marshaller.</summary>
    public SafeXenStoreHandle() : base(0, ownsHandle: true) { }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        XenStoreLib.Close(handle);
        return true;
    }
}
