namespace BlkTap.Loop;

/// <summary>
/// A file descriptor the loop's waiter watches: the loop thread finds it ready in its wait and runs the handler at once,
/// with no queue in between. Its <see cref="Token"/> (a <see cref="GenerationalHandle"/> of its slot in the loop's
/// descriptor table) is what the waiter reports it under.
/// </summary>
internal sealed class DescriptorRegistration : PollRegistration
{
    public DescriptorRegistration(EventLoop loop, int fd, PollEvents interest, Action<PollEvents> handler) : base(loop, handler)
    {
        Fd = fd;
        Interest = interest;
    }

    /// <summary>The watched descriptor (owned by the caller).</summary>
    public int Fd { get; }

    /// <summary>What it is watched for now. Written by the owning thread (<see cref="EventLoop.ChangeInterest"/>).</summary>
    public PollEvents Interest;

    /// <summary>The waiter's token for it; set once, before the watch starts.</summary>
    public long Token;

    /// <inheritdoc/>
    internal override void Release() => Loop.ReleaseDescriptor(this);
}
