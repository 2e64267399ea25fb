namespace BlkTap.Nbd;

/// <summary>
/// Receives the completion of each request submitted to an <see cref="NbdClient"/>.
/// Threading: called on the thread that drives the client (inside <see cref="NbdClient.OnReadable"/>,
/// <see cref="NbdClient.Flush"/>, <see cref="NbdClient.Reconnect"/> or <see cref="NbdClient.Dispose"/>),
/// never concurrently. The sink may call <see cref="NbdClient.Submit"/> from inside the callback.
/// </summary>
public interface INbdCompletionSink
{
    /// <summary>
    /// One request finished. <paramref name="nbdError"/> is 0 on success, a positive NBD error value
    /// (<see cref="NbdError"/>, e.g. EIO) the server sent, or <see cref="NbdError.ConnectionLost"/> when the
    /// connection broke first (the outcome of a write is then unknown). For a successful READ the data is
    /// already in the caller's buffer; after this call the client no longer touches that buffer.
    /// </summary>
    void OnCompleted(ulong userToken, int nbdError);
}
