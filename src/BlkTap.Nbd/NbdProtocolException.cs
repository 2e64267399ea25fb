namespace BlkTap.Nbd;

/// <summary>
/// The peer broke the NBD protocol or refused the negotiation (for example an NBD_REP_ERR_* answer to
/// NBD_OPT_GO). The message names the export and the problem.
/// </summary>
public sealed class NbdProtocolException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NbdProtocolException(string message) : base(message) { }

    /// <summary>Creates the exception with an inner cause.</summary>
    public NbdProtocolException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The option reply error the server sent, when that is the cause; otherwise null.</summary>
    public NbdOptionReplyType? ServerReply { get; init; }
}
