using BlkTap.Chains;

namespace BlkTap;

/// <summary>
/// Builds a <see cref="TapRuntime"/> with its hooks, with or without a DI container. Hooks may be
/// given as instances or as types resolved from an <see cref="IServiceProvider"/>.
/// </summary>
/// <remarks>Not thread-safe: configure on one thread, then call <see cref="Build"/> once.</remarks>
public sealed class TapRuntimeBuilder
{
    private readonly List<Action<TapRuntime, IServiceProvider?>> _steps = new();
    private readonly List<Action<TapRuntimeOptions, IServiceProvider?>> _configureOptions = new();

    /// <summary>The runtime's settings.</summary>
    public TapRuntimeOptions Options { get; } = new();

    /// <summary>Adds a request hook instance.</summary>
    public TapRuntimeBuilder AddRequestHook(string name, IRequestHook hook) { _steps.Add((rt, _) => rt.RegisterRequestHook(name, hook)); return this; }
    /// <summary>Adds a response hook instance.</summary>
    public TapRuntimeBuilder AddResponseHook(string name, IResponseHook hook) { _steps.Add((rt, _) => rt.RegisterResponseHook(name, hook)); return this; }
    /// <summary>Adds a control hook instance.</summary>
    public TapRuntimeBuilder AddControlHook(string name, IControlHook hook) { _steps.Add((rt, _) => rt.RegisterControlHook(name, hook)); return this; }

    /// <summary>Adds a request hook resolved from the container (or created with its parameterless constructor without one).</summary>
    public TapRuntimeBuilder AddRequestHook<T>(string name) where T : class, IRequestHook
    {
        _steps.Add((rt, sp) => rt.RegisterRequestHook(name, Resolve<T>(sp)));
        return this;
    }

    /// <summary>Adds a response hook resolved from the container.</summary>
    public TapRuntimeBuilder AddResponseHook<T>(string name) where T : class, IResponseHook
    {
        _steps.Add((rt, sp) => rt.RegisterResponseHook(name, Resolve<T>(sp)));
        return this;
    }

    /// <summary>Adds a control hook resolved from the container.</summary>
    public TapRuntimeBuilder AddControlHook<T>(string name) where T : class, IControlHook
    {
        _steps.Add((rt, sp) => rt.RegisterControlHook(name, Resolve<T>(sp)));
        return this;
    }

    /// <summary>Adds a chain of taps (frontend side first), registered as <see cref="TapChain.Register(TapRuntime, IReadOnlyList{ITap})"/> does.</summary>
    public TapRuntimeBuilder AddChain(IReadOnlyList<ITap> chain)
    {
        _steps.Add((rt, _) => TapChain.Register(rt, chain));
        return this;
    }

    /// <summary>
    /// Adds the chain registered in the container (a <see cref="TapChain"/>, as
    /// <c>services.AddBlkTap(specs, ...)</c> registers it), frontend side first. Needs a container at
    /// <see cref="Build"/>.
    /// </summary>
    public TapRuntimeBuilder AddChain()
    {
        _steps.Add((rt, sp) => TapChain.Register(rt, RequireContainer(sp).GetService(typeof(TapChain)) as TapChain
            ?? throw new InvalidOperationException("no TapChain is registered in the container (use services.AddBlkTap(specs, ...))")));
        return this;
    }

    /// <summary>Adds a control hook made from the container (for a hook that needs, say, a logger). Needs a container at <see cref="Build"/>.</summary>
    public TapRuntimeBuilder AddControlHook(string name, Func<IServiceProvider, IControlHook> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        _steps.Add((rt, sp) => rt.RegisterControlHook(name, factory(RequireContainer(sp))));
        return this;
    }

    /// <summary>
    /// Changes <see cref="Options"/> at <see cref="Build"/>, before the runtime is created, with the container
    /// (null without one): for settings made from services (diagnostics to a logger) or created only when the
    /// runtime is (a loop waiter owning descriptors).
    /// </summary>
    public TapRuntimeBuilder ConfigureOptions(Action<TapRuntimeOptions, IServiceProvider?> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        _configureOptions.Add(configure);
        return this;
    }

    /// <summary>Sets the interposition backend.</summary>
    public TapRuntimeBuilder UseBackend(ITapBackend backend)
    {
        _steps.Add((rt, _) => rt.Backend = backend);
        return this;
    }

    /// <summary>
    /// Builds the runtime; <paramref name="services"/> resolves hooks added by type. A step that throws (a chain
    /// that cannot be built) disposes the runtime and the exception propagates.
    /// </summary>
    public TapRuntime Build(IServiceProvider? services = null)
    {
        foreach (var configure in _configureOptions) configure(Options, services);
        var runtime = new TapRuntime(Options);
        try
        {
            foreach (var step in _steps) step(runtime, services);
        }
        catch
        {
            runtime.Dispose();
            throw;
        }
        return runtime;
    }

    private static IServiceProvider RequireContainer(IServiceProvider? sp) =>
        sp ?? throw new InvalidOperationException("this runtime builder resolves services: build it with a container");

    private static T Resolve<T>(IServiceProvider? sp) where T : class
    {
        if (sp?.GetService(typeof(T)) is T t) return t;
        if (typeof(T).GetConstructor(Type.EmptyTypes) != null) return Activator.CreateInstance<T>();
        throw new InvalidOperationException($"hook type {typeof(T).Name} is not registered in the container and has no parameterless constructor");
    }
}
