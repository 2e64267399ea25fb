namespace BlkTap.Examples;

/// <summary>
/// An overlay file that is not a usable cow overlay (bad magic, unknown version, checksum mismatch,
/// wrong length) or that does not fit its base (size mismatch). The message names the file and the
/// problem; the CLI prints it and exits 2.
/// </summary>
public sealed class CowFormatException(string message) : Exception(message);
