namespace BlkTap.Examples;
/// <summary>Marks the BlkTap.Examples assembly.</summary>
public static class BlkTapExamplesAssemblyMarker { }
