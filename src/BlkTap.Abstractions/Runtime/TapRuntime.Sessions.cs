namespace BlkTap;

public sealed partial class TapRuntime
{
    // Sessions: attach, connect and close, and the control events they raise. Loop thread.

    /// <summary>
    /// Loop thread: attaches a session: assigns its id and runs the Attach control event, during which
    /// hooks may set its disk parameters. Call <see cref="ConnectSession"/> once its ring is live.
    /// </summary>
    public void AttachSession(TapSession session)
    {
        AssertLoopThread();
        if (session.Runtime != null && session.IsOpen) throw new InvalidOperationException($"session {session.Name} is already attached");
        session.Runtime = this;
        session.Id = ++_nextSessionId;
        session.IsOpen = true;
        _sessions.Add(session);
        session.Metrics = new Metrics.SessionMetrics(Options.Name, session.Name);
        Metrics.TapMetrics.ActiveSessions.Add(1, session.Metrics.TapTags);
        RaiseControl(new ControlEvent(ControlEventKind.Attach, session));
    }

    /// <summary>Loop thread: the session's frontend is connected; runs the Connect control event and looks for requests.</summary>
    public void ConnectSession(TapSession session)
    {
        AssertLoopThread();
        RaiseControl(new ControlEvent(ControlEventKind.Connect, session));
        session.Signal();
    }

    /// <summary>
    /// Loop thread: closes a session (frontend gone, protocol error, shutdown). Runs the Disconnect
    /// control event. Requests still stolen or at the backend complete later without reaching the
    /// frontend. No other session notices.
    /// </summary>
    public void CloseSession(TapSession session, string? reason = null)
    {
        AssertLoopThread();
        if (!session.IsOpen) return;
        session.IsOpen = false;
        _sessions.Remove(session);
        if (session.Metrics is { } metrics) Metrics.TapMetrics.ActiveSessions.Add(-1, metrics.TapTags);
        if (reason != null) Report(TapDiagnosticLevel.Warning, session, $"session closed: {reason}");
        RaiseControl(new ControlEvent(ControlEventKind.Disconnect, session, reason));
        try { session.OnClosed(reason); }
        catch (Exception ex) { Report(TapDiagnosticLevel.Error, session, "transport failed while closing", ex); }
    }

    private void RaiseControl(ControlEvent e)
    {
        foreach (var hook in _controlChain)
        {
            try { hook.OnControl(e); }
            catch (Exception ex) { Report(TapDiagnosticLevel.Error, e.Session, $"control hook failed on {e.Kind}", ex); }
        }
    }
}
