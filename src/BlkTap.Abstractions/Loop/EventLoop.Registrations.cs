using System.Net.Sockets;

namespace BlkTap.Loop;

public sealed partial class EventLoop
{
    // Registrations: descriptors the waiter watches (found ready by the loop thread itself), and sockets and wait
    // handles whose readiness another thread hands over through the work queue.

    private readonly List<PollRegistration> _registrations = new();
    // Descriptor registrations by slot, read by the loop without a lock: a token is a GenerationalHandle (generation,
    // slot), so a report for a registration that has gone (its slot reused since) does not match the slot's new token.
    // Written under the _registrations lock; grown by copy.
    private DescriptorRegistration?[] _slots = new DescriptorRegistration?[8];
    private uint _generation;
    private int _descriptors;

    /// <inheritdoc/>
    public PollRegistration Attach(int fd, PollEvents interest, Action<PollEvents> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (fd < 0) throw new ArgumentOutOfRangeException(nameof(fd), fd, "not a file descriptor");
        if (!SupportsDescriptors) throw new NotSupportedException("this loop cannot watch file descriptors (its waiter, or an external driver)");
        var reg = new DescriptorRegistration(this, fd, interest, handler);
        lock (_registrations)
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
            _registrations.Add(reg);
            _descriptors++;
        }
        try { _waiter.Watch(fd, interest, reg.Token); }
        catch
        {
            lock (_registrations) { _registrations.Remove(reg); FreeSlot(reg); }
            throw;
        }
        return reg;
    }

    /// <inheritdoc/>
    public PollRegistration Attach(Socket socket, Action<PollEvents> handler)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(handler);
        // A loop that watches descriptors waits on the socket itself (level-triggered: while data is unread the
        // handler runs every pass, which is what re-arming after each call gives too). No socket-engine thread.
        if (SupportsDescriptors) return Attach((int)socket.Handle, PollEvents.Readable, _ => handler(PollEvents.Readable));
        var reg = new SocketRegistration(this, socket, handler);
        lock (_registrations) _registrations.Add(reg);
        reg.Arm();
        return reg;
    }

    /// <inheritdoc/>
    public PollRegistration Attach(WaitHandle handle, Action<PollEvents> handler)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentNullException.ThrowIfNull(handler);
        var reg = new WaitHandleRegistration(this, handle, handler);
        lock (_registrations) _registrations.Add(reg);
        return reg;
    }

    /// <inheritdoc/>
    public void ChangeInterest(PollRegistration registration, PollEvents interest)
    {
        ArgumentNullException.ThrowIfNull(registration);
        if (registration is not DescriptorRegistration d) throw new InvalidOperationException("only a descriptor registration has an interest set");
        if (!ReferenceEquals(d.Loop, this)) throw new ArgumentException("the registration belongs to another loop", nameof(registration));
        if (d.Detached || interest == d.Interest) return;
        d.Interest = interest;
        _waiter.Modify(d.Fd, interest, d.Token);
    }

    /// <inheritdoc/>
    public void Detach(PollRegistration registration)
    {
        ArgumentNullException.ThrowIfNull(registration);
        if (!ReferenceEquals(registration.Loop, this)) throw new ArgumentException("the registration belongs to another loop", nameof(registration));
        if (registration.Detached) return;
        registration.Detached = true;
        registration.Release();
        lock (_registrations) _registrations.Remove(registration);
    }

    /// <summary>Any thread, once per descriptor registration being detached: stops the watch and frees its slot.</summary>
    internal void ReleaseDescriptor(DescriptorRegistration registration)
    {
        try { _waiter.Unwatch(registration.Fd); }
        catch (Exception ex) when (ex is not OutOfMemoryException) { /* the descriptor may already be closed */ }
        lock (_registrations) FreeSlot(registration);
    }

    /// <summary>Under the _registrations lock: frees the registration's slot.</summary>
    private void FreeSlot(DescriptorRegistration reg)
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
            catch (Exception ex) { ReportHandlerFailure("poll handler threw", ex); }
        }
        return count;
    }

    private void DetachAll()
    {
        PollRegistration[] all;
        lock (_registrations) all = _registrations.ToArray();
        foreach (var r in all) Detach(r);
    }
}
