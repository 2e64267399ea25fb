namespace BlkTap.Xen;
/// <summary>Marks the BlkTap.Xen assembly.</summary>
public static class BlkTapXenAssemblyMarker { }
