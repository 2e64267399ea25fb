using System.Net.Sockets;

namespace BlkTap;

/// <summary>Readiness a poll registration waits for.</summary>
[Flags]
public enum PollEvents
{
    /// <summary>Nothing.</summary>
    None = 0,
    /// <summary>Data can be read (or the peer closed).</summary>
    Readable = 1,
    /// <summary>The watched handle was signalled.</summary>
    Signalled = 4,
}

/// <summary>A socket or wait handle attached to a tap's loop (blktap_attach_poll). Dispose or DetachPoll to remove.</summary>
public sealed class PollRegistration : IDisposable
{
    internal PollRegistration(TapRuntime runtime, Action<PollEvents> handler) { Runtime = runtime; Handler = handler; }
    internal TapRuntime Runtime { get; }
    internal Action<PollEvents> Handler { get; }
    internal Socket? Socket;
    internal SocketAsyncEventArgs? Args;
    internal RegisteredWaitHandle? Wait;
    internal volatile bool Detached;
    internal PollEvents Ready;

    /// <summary>Detaches from the loop.</summary>
    public void Dispose() => Runtime.DetachPoll(this);
}

public sealed partial class TapRuntime
{
    private readonly List<PollRegistration> _polls = new();

    /// <summary>
    /// Attaches a socket to the loop (blktap_attach_poll): <paramref name="handler"/> runs on the loop
    /// thread each time the socket becomes readable (data, or the peer closed). The handler should read
    /// what is available without blocking (e.g. with <c>Socket.Available</c> or a non-blocking socket);
    /// the socket is re-armed after it returns. Safe from any thread.
    /// </summary>
    public PollRegistration AttachPoll(Socket socket, Action<PollEvents> handler)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(handler);
        var reg = new PollRegistration(this, handler) { Socket = socket };
        var args = new SocketAsyncEventArgs();
        args.SetBuffer(Memory<byte>.Empty);
        args.UserToken = reg;
        args.Completed += static (_, a) => ((PollRegistration)a.UserToken!).Runtime.OnSocketReady((PollRegistration)a.UserToken!);
        reg.Args = args;
        lock (_polls) _polls.Add(reg);
        Arm(reg);
        return reg;
    }

    /// <summary>
    /// Attaches a wait handle to the loop: <paramref name="handler"/> runs on the loop thread each time
    /// it is signalled. Safe from any thread.
    /// </summary>
    public PollRegistration AttachPoll(WaitHandle handle, Action<PollEvents> handler)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var reg = new PollRegistration(this, handler);
        reg.Wait = ThreadPool.RegisterWaitForSingleObject(handle,
            static (state, _) => { var r = (PollRegistration)state!; r.Ready = PollEvents.Signalled; r.Runtime.Enqueue(new WorkItem(WorkKind.Poll, null, null, null, r)); },
            reg, Timeout.Infinite, executeOnlyOnce: false);
        lock (_polls) _polls.Add(reg);
        return reg;
    }

    /// <summary>Detaches a registration (blktap_detach_poll). Safe from any thread; idempotent.</summary>
    public void DetachPoll(PollRegistration registration)
    {
        if (registration.Detached) return;
        registration.Detached = true;
        registration.Wait?.Unregister(null);
        lock (_polls) _polls.Remove(registration);
    }

    private void Arm(PollRegistration reg)
    {
        if (reg.Detached) return;
        bool pending;
        try { pending = reg.Socket!.ReceiveAsync(reg.Args!); }
        catch (ObjectDisposedException) { return; }
        catch (SocketException) { pending = false; }
        if (!pending) OnSocketReady(reg);
    }

    private void OnSocketReady(PollRegistration reg)
    {
        if (reg.Detached) return;
        reg.Ready = PollEvents.Readable;
        Enqueue(new WorkItem(WorkKind.Poll, null, null, null, reg));
    }

    private void RunPoll(PollRegistration reg)
    {
        if (reg.Detached) return;
        try { reg.Handler(reg.Ready); }
        catch (Exception ex) { Report(TapDiagnosticLevel.Error, null, "poll handler threw", ex); }
        if (reg.Socket != null && !reg.Detached)
        {
            // A closed peer keeps the socket readable; the handler is expected to detach then.
            Arm(reg);
        }
    }

    private void DisposePolls()
    {
        PollRegistration[] all;
        lock (_polls) all = _polls.ToArray();
        foreach (var r in all) DetachPoll(r);
    }
}
