namespace BlkTap;

/// <summary>Domain id facts shared by every platform.</summary>
public static class XenDomainIds
{
    /// <summary>
    /// DOMID_FIRST_RESERVED: ids from 0x7FF0 up name no domain (DOMID_SELF, DOMID_IO, DOMID_XEN, ...).
    /// </summary>
    // NOTE: xen/include/public/xen.h defines DOMID_FIRST_RESERVED as 0x7FF0U.
    public const ushort FirstReserved = 0x7FF0;

    /// <summary>True when <paramref name="id"/> can name a real domain.</summary>
    public static bool IsValid(ulong id) => id < FirstReserved;
}
