using Microsoft.Extensions.Logging;

namespace BlkTap;

/// <summary>Settings of a <see cref="TapRuntime"/>.</summary>
public sealed class TapRuntimeOptions
{
    /// <summary>A name for logs and thread names.</summary>
    public string Name { get; set; } = "tap";

    /// <summary>
    /// Receives diagnostics (a hook threw, a session broke the ring protocol). Called on the loop
    /// thread; must not block. Null: diagnostics are dropped.
    /// </summary>
    public Action<TapDiagnostic>? Diagnostics { get; set; }

    /// <summary>
    /// Where diagnostics are logged when <see cref="Diagnostics"/> is null, each at its level (error, warning,
    /// information) with its exception; the hosted services use <c>TapLogging.LogToContainer</c> instead, which sets
    /// <see cref="Diagnostics"/> from the container's logger. Called as <see cref="Diagnostics"/> is. Null: dropped.
    /// </summary>
    public ILogger? Logger { get; set; }

    /// <summary>Segments an indirect request may carry (feature-max-indirect-segments); 0 disables indirect requests.</summary>
    public int MaxIndirectSegments { get; set; } = 256;

    /// <summary>
    /// How the runtime's own loop sleeps (null: an <see cref="EventLoopWaiter"/>; see <see cref="Loop.EventLoopOptions.Waiter"/>).
    /// Give an epoll waiter (BlkTap.Linux's <c>EpollLoopWaiter</c>) to let the loop watch descriptors itself
    /// (<see cref="TapRuntime.AttachPoll(int, PollEvents, Action{PollEvents})"/>), which the NBD server uses to serve its
    /// sockets without thread hand-offs. The runtime's loop disposes it. Must be null for a runtime given a loop
    /// (<see cref="TapRuntime(Loop.EventLoop, TapRuntimeOptions?)"/>).
    /// </summary>
    public ILoopWaiter? Waiter { get; set; }

    /// <summary>
    /// The clock of the runtime's delays (the backoff of a ring whose notifications keep finding nothing, XSA-332).
    /// Tests may give a fake one. Default: the system's.
    /// </summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}

/// <summary>Severity of a diagnostic.</summary>
public enum TapDiagnosticLevel
{
    /// <summary>Informational.</summary>
    Information,
    /// <summary>Something a frontend or hook did wrong; the runtime carried on.</summary>
    Warning,
    /// <summary>A failure that closed a session or lost a request.</summary>
    Error,
}

/// <summary>A message from the runtime to its host's log.</summary>
/// <param name="Level">Severity.</param>
/// <param name="Session">The session concerned, if any.</param>
/// <param name="Message">What happened, in one line.</param>
/// <param name="Exception">The exception, if one was caught.</param>
public readonly record struct TapDiagnostic(TapDiagnosticLevel Level, TapSession? Session, string Message, Exception? Exception = null)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{Level}: {(Session != null ? Session.Name + ": " : "")}{Message}{(Exception != null ? " (" + Exception.GetType().Name + ": " + Exception.Message + ")" : "")}";
}
