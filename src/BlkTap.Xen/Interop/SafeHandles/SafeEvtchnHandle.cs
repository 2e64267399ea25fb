using System.Runtime.InteropServices;

namespace BlkTap.Xen.Interop;

/// <summary>A <c>xenevtchn_handle *</c> from xenevtchn_open; closed with xenevtchn_close (which unbinds every
/// port bound through it).</summary>
internal sealed class SafeEvtchnHandle : SafeHandle
{
    /// <summary>Used by the P/Invoke marshaller.</summary>
    public SafeEvtchnHandle() : base(0, ownsHandle: true) { }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle() => EvtchnLib.Close(handle) == 0;
}
