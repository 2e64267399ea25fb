namespace BlkTap;

/// <summary>A <see cref="XenbusBlockFrontend"/> could not connect, or its backend went away or broke the protocol.</summary>
public sealed class XenbusFrontendException : Exception
{
    /// <summary>Creates the exception.</summary>
    public XenbusFrontendException(string message) : base(message) { }
}
