namespace BlkTap.Xen.Interop;

/// <summary>Indices into the vector xs_read_watch / xs_check_watch return.</summary>
/// <remarks>NOTE: xen/include/public/io/xs_wire.h <c>enum xs_watch_type { XS_WATCH_PATH = 0, XS_WATCH_TOKEN }</c>.</remarks>
internal static class XsWire
{
    public const int XS_WATCH_PATH = 0;
    public const int XS_WATCH_TOKEN = 1;
}
