namespace BlkTap;
/// <summary>Marks the BlkTap.Abstractions assembly.</summary>
public static class BlkTapAbstractionsAssemblyMarker { }
