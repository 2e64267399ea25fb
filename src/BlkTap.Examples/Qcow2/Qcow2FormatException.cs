namespace BlkTap.Examples.Qcow2;

/// <summary>A qcow2 image that cannot be used: the message is one line naming the file and the problem.</summary>
public sealed class Qcow2FormatException(string message) : Exception(message);
