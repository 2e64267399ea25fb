using BlkTap.Xen.Interop;

namespace BlkTap.Xen.Internal;

/// <summary>Maps Xen's per-operation grant results (GNTST_*) and errno values to <see cref="GrantStatus"/>.</summary>
internal static class GrantStatusMapping
{
    /// <summary>The <see cref="GrantStatus"/> for a GNTST_* code.</summary>
    // NOTE: xen/include/public/grant_table.h: GNTST_bad_domain (-2) "Unrecognsed domain id"; GNTST_bad_gntref (-3)
    // "Unrecognised or inappropriate gntref" (never granted, revoked, or granted to another domain);
    // GNTST_permission_denied (-8) is what Xen returns for a writable access to a GTF_readonly grant.
    public static GrantStatus FromGntst(short gntst) => gntst switch
    {
        GrantTableConstants.GNTST_okay => GrantStatus.Okay,
        GrantTableConstants.GNTST_bad_domain => GrantStatus.NoSuchDomain,
        GrantTableConstants.GNTST_bad_gntref => GrantStatus.NotGranted,
        GrantTableConstants.GNTST_permission_denied => GrantStatus.ReadOnly,
        _ => GrantStatus.Failed,
    };
}
