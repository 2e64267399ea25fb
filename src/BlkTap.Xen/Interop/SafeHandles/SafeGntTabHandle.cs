using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>A <c>xengnttab_handle *</c> from xengnttab_open; closed with xengnttab_close (which also unmaps
/// every mapping made through it).</summary>
internal sealed class SafeGntTabHandle : SafeHandle
{
    /// <summary>Used by the P/Invoke marshaller.</summary>
    public SafeGntTabHandle() : base(0, ownsHandle: true) { }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle() => GntTabLib.Close(handle) == 0;
}
