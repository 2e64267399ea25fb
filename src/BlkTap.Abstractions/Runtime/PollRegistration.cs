using BlkTap.Loop;

namespace BlkTap;

/// <summary>
/// A descriptor, socket or wait handle attached to an event loop (blktap_attach_poll): what
/// <see cref="IEventLoop.Attach(int, PollEvents, Action{PollEvents})"/> and its overloads (and
/// <see cref="TapRuntime.AttachPoll(int, PollEvents, Action{PollEvents})"/>) return. Dispose it, or detach it on its
/// loop, to remove it. Each kind is a class of its own inside the loop (BlkTap.Loop's descriptor, socket and wait-handle
/// registrations); this base is what callers hold.
/// </summary>
/// <remarks>Threading: <see cref="Dispose"/> is safe from any thread and idempotent; <see cref="SetInterest"/> belongs to
/// the thread that owns the registration (normally the loop thread).</remarks>
public abstract class PollRegistration : IDisposable
{
    private protected PollRegistration(EventLoop loop, Action<PollEvents> handler)
    {
        Loop = loop;
        Handler = handler;
    }

    /// <summary>The loop the registration is attached to.</summary>
    internal EventLoop Loop { get; }

    /// <summary>Runs on the loop thread with what is ready.</summary>
    internal Action<PollEvents> Handler { get; }

    /// <summary>Set once, by the first detach; a detached registration's handler runs no more.</summary>
    internal volatile bool Detached;

    /// <summary>
    /// For a descriptor registration: changes what it waits for (for example Writable only while output is queued,
    /// None while the reader is throttled). Errors and hang-ups are always reported. Call it from the thread that owns
    /// the registration (normally the loop thread), never concurrently with its <see cref="Dispose"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">A socket or wait-handle registration.</exception>
    public void SetInterest(PollEvents interest) => Loop.ChangeInterest(this, interest);

    /// <summary>Detaches from the loop. Any thread; idempotent.</summary>
    public void Dispose() => Loop.Detach(this);

    /// <summary>Any thread, once, after <see cref="Detached"/> was set: releases what the kind holds (a thread-pool wait, a watch).</summary>
    internal abstract void Release();
}
