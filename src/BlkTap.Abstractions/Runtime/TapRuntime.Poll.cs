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
    /// <summary>Data can be written without blocking (descriptor registrations only).</summary>
    Writable = 2,
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
    internal int Fd = -1;
    internal long Token;
    internal PollEvents Interest;
    internal volatile bool Detached;
    internal PollEvents Ready;

    /// <summary>
    /// For a descriptor registration: changes what it waits for (for example Writable only while output is queued,
    /// None while the reader is throttled). Errors and hang-ups are always reported. Call it from the thread that owns
    /// the registration (normally the loop thread), never concurrently with its <see cref="Dispose"/>.
    /// </summary>
    public void SetInterest(PollEvents interest)
    {
        if (Fd < 0) throw new InvalidOperationException("only a descriptor registration has an interest set");
        if (Detached || interest == Interest) return;
        Interest = interest;
        Runtime.Waiter.Modify(Fd, interest, Token);
    }

    /// <summary>Detaches from the loop.</summary>
    public void Dispose() => Runtime.DetachPoll(this);
}

/// <summary>Work a loop component gathers during a pass and finishes once at its end (see <see cref="TapRuntime.RunAtEndOfPass"/>).</summary>
public interface IEndOfPassHandler
{
    /// <summary>Loop thread: the pass's responses have all been delivered.</summary>
    void OnEndOfPass();
}

public sealed partial class TapRuntime
{
    private readonly List<PollRegistration> _polls = new();
    // Descriptor registrations by slot, read by the loop without a lock: a token is a GenerationalHandle (generation,
    // slot), so a report for a registration that has gone (its slot reused since) does not match the slot's new token.
    // Written under the _polls lock; grown by copy.
    private PollRegistration?[] _slots = new PollRegistration?[8];
    private uint _generation;
    private int _descriptors;

    internal ILoopWaiter Waiter => _waiter;

    /// <summary>
    /// Attaches a file descriptor to the loop: <paramref name="handler"/> runs on the loop thread whenever the
    /// descriptor is ready for <paramref name="interest"/> (level-triggered: while it stays ready, every pass), or
    /// has an error or hang-up (reported as Readable|Writable). No thread is involved: the loop thread itself waits
    /// on the descriptor. Requires a waiter with <see cref="ILoopWaiter.SupportsDescriptors"/>
    /// (see <see cref="SupportsDescriptors"/>). The caller owns the descriptor and must detach before closing it.
    /// Safe from any thread.
    /// </summary>
    public PollRegistration AttachPoll(int fd, PollEvents interest, Action<PollEvents> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (fd < 0) throw new ArgumentOutOfRangeException(nameof(fd), fd, "not a file descriptor");
        if (!SupportsDescriptors) throw new NotSupportedException("this runtime's loop cannot watch file descriptors (TapRuntimeOptions.Waiter)");
        var reg = new PollRegistration(this, handler) { Fd = fd, Interest = interest };
        lock (_polls)
        {
            var slots = _slots;
            int slot = Array.IndexOf(slots, null);
            if (slot < 0)
            {
                slot = slots.Length;
                Array.Resize(ref slots, slots.Length * 2);
            }
            reg.Token = (long)GenerationalHandle.Make(++_generation, slot);
            slots[slot] = reg;
            Volatile.Write(ref _slots, slots);
            _polls.Add(reg);
            _descriptors++;
        }
        try { _waiter.Watch(fd, interest, reg.Token); }
        catch
        {
            lock (_polls) { _polls.Remove(reg); ReleaseSlot(reg); }
            throw;
        }
        return reg;
    }

    /// <summary>Under the _polls lock: frees the registration's slot.</summary>
    private void ReleaseSlot(PollRegistration reg)
    {
        int slot = GenerationalHandle.SlotOf((ulong)reg.Token);
        if (ReferenceEquals(_slots[slot], reg)) { Volatile.Write(ref _slots[slot], null); _descriptors--; }
    }

    /// <summary>Loop thread: runs the handlers of the descriptors the waiter reported ready (no lock taken).</summary>
    private int DispatchReady(int count)
    {
        var slots = Volatile.Read(ref _slots);
        for (int i = 0; i < count; i++)
        {
            long token = _ready[i].Token;
            int slot = GenerationalHandle.SlotOf((ulong)token);
            var reg = slot < slots.Length ? Volatile.Read(ref slots[slot]) : null;
            if (reg == null || reg.Token != token || reg.Detached) continue;
            try { reg.Handler(_ready[i].Events); }
            catch (Exception ex) { Report(TapDiagnosticLevel.Error, null, "poll handler threw", ex); }
        }
        return count;
    }

    /// <summary>
    /// Attaches a socket to the loop (blktap_attach_poll): <paramref name="handler"/> runs on the loop
    /// thread each time the socket becomes readable (data, or the peer closed). The handler should read
    /// what is available without blocking (e.g. with <c>Socket.Available</c> or a non-blocking socket);
    /// the socket is re-armed after it returns. On a loop that watches descriptors (<see cref="SupportsDescriptors"/>)
    /// the loop thread polls the socket itself. Detach before disposing the socket. Safe from any thread.
    /// </summary>
    public PollRegistration AttachPoll(Socket socket, Action<PollEvents> handler)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(handler);
        // A loop that watches descriptors waits on the socket itself (level-triggered: while data is unread the
        // handler runs every pass, which is what re-arming after each call gives too). No socket-engine thread.
        if (SupportsDescriptors) return AttachPoll((int)socket.Handle, PollEvents.Readable, _ => handler(PollEvents.Readable));

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
        if (registration.Fd >= 0)
        {
            try { _waiter.Unwatch(registration.Fd); }
            catch (Exception ex) when (ex is not OutOfMemoryException) { /* the descriptor may already be closed */ }
            lock (_polls) ReleaseSlot(registration);
        }
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
