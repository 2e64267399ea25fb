namespace BlkTap.Emulator;
/// <summary>Marks the BlkTap.Emulator assembly.</summary>
public static class BlkTapEmulatorAssemblyMarker { }
