namespace BlkTap;

/// <summary>What a request hook did with a request (the 2005 blktaplib's BLKTAP_PASS / RESPOND / STOLEN).</summary>
public enum HookResult
{
    /// <summary>Hand the request to the next hook; past the last hook, to the backend (or EOPNOTSUPP with none).</summary>
    Pass = 0,
    /// <summary>End the chain and answer now with <see cref="TapRequest.Status"/>.</summary>
    Respond = 1,
    /// <summary>End the chain; the hook owes exactly one <see cref="TapRuntime.InjectResponse"/> (or <see cref="TapRuntime.Resume"/>) later.</summary>
    Stolen = 2,
}

/// <summary>A request hook (the 2005 blktaplib's <c>blktap_register_request_hook</c>).</summary>
/// <remarks>
/// Threading: called on the tap's loop thread only, one request at a time. Must not block: slow work
/// steals the request and injects its response later from any thread. An exception thrown here is
/// caught by the runtime and the request is answered with ERROR.
/// </remarks>
public interface IRequestHook
{
    /// <summary>Sees a validated request whose data segments are mapped.</summary>
    HookResult OnRequest(TapRequest request);
}

/// <summary>A response hook (the 2005 blktaplib's <c>blktap_register_response_hook</c>).</summary>
/// <remarks>
/// Threading: loop thread only. Sees every response (from the backend, a Respond, or an injection)
/// exactly once before it reaches the frontend; may read the request's data (a read's result) and
/// change <see cref="TapRequest.Status"/>.
/// </remarks>
public interface IResponseHook
{
    /// <summary>Sees a completed request; its <see cref="TapRequest.Status"/> is the response status.</summary>
    void OnResponse(TapRequest request);
}

/// <summary>A control hook (the 2005 blktaplib's <c>blktap_register_ctrl_hook</c>).</summary>
/// <remarks>Threading: loop thread only. May set the session's disk parameters during <see cref="ControlEventKind.Attach"/>.</remarks>
public interface IControlHook
{
    /// <summary>Sees a session's attach, connect or disconnect.</summary>
    void OnControl(ControlEvent controlEvent);
}

/// <summary>Kinds of control event.</summary>
public enum ControlEventKind
{
    /// <summary>
    /// A disk is being attached for a frontend; <see cref="TapSession.ImageId"/> carries the image
    /// identifier (xenstore <c>params</c>). Hooks may set <see cref="TapSession.Sectors"/>,
    /// <see cref="TapSession.ReadOnly"/> and the feature flags before the frontend is told.
    /// </summary>
    Attach,
    /// <summary>The frontend's ring is connected; requests may follow.</summary>
    Connect,
    /// <summary>The session is gone (frontend closed, protocol error, or shutdown).</summary>
    Disconnect,
}

/// <summary>A control event for one session.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Session">The session it happened to.</param>
/// <param name="Reason">For disconnects, why (null for a clean close).</param>
public readonly record struct ControlEvent(ControlEventKind Kind, TapSession Session, string? Reason = null);

/// <summary>
/// Where passed requests go in the interposition placement: the real backend (a blkback ring, a
/// device). Completion is reported with <see cref="TapRuntime.InjectResponse"/>, from any thread.
/// </summary>
/// <remarks>Threading: <see cref="Submit"/> is called on the loop thread and must not block.</remarks>
public interface ITapBackend
{
    /// <summary>Starts serving a request that passed every hook.</summary>
    void Submit(TapRequest request);
}

/// <summary>Delegates as hooks, for small hooks and tests.</summary>
public static class Hook
{
    /// <summary>A request hook from a function.</summary>
    public static IRequestHook Request(Func<TapRequest, HookResult> onRequest) => new RequestFn(onRequest);
    /// <summary>A response hook from an action.</summary>
    public static IResponseHook Response(Action<TapRequest> onResponse) => new ResponseFn(onResponse);
    /// <summary>A control hook from an action.</summary>
    public static IControlHook Control(Action<ControlEvent> onControl) => new ControlFn(onControl);

    private sealed class RequestFn(Func<TapRequest, HookResult> f) : IRequestHook { public HookResult OnRequest(TapRequest r) => f(r); }
    private sealed class ResponseFn(Action<TapRequest> f) : IResponseHook { public void OnResponse(TapRequest r) => f(r); }
    private sealed class ControlFn(Action<ControlEvent> f) : IControlHook { public void OnControl(ControlEvent e) => f(e); }
}
