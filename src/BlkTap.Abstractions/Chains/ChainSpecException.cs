namespace BlkTap.Chains;

/// <summary>A bad chain spec or tap option (the CLI prints the message and exits 2).</summary>
/// <remarks>Thread-safe (immutable).</remarks>
public sealed class ChainSpecException(string message) : Exception(message);
