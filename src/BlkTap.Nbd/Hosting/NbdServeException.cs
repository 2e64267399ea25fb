namespace BlkTap.Nbd.Hosting;

/// <summary>Why an <see cref="NbdServeService"/> could not start.</summary>
public enum NbdServeFailure
{
    /// <summary>The chain gives the disk no size (its terminator could not open the disk): nothing to serve.</summary>
    NoDisk,

    /// <summary>The socket could not be bound (in use, no permission); the inner exception is the <see cref="System.Net.Sockets.SocketException"/>.</summary>
    CannotListen,
}

/// <summary>An <see cref="NbdServeService"/> could not start; the host's start fails with it.</summary>
public sealed class NbdServeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NbdServeException(NbdServeFailure failure, string message, Exception? inner = null) : base(message, inner) => Failure = failure;

    /// <summary>What failed.</summary>
    public NbdServeFailure Failure { get; }
}
