namespace BlkTap.Chains;

/// <summary>A convenient <see cref="ITap"/> whose hooks are the object itself where it implements them.</summary>
/// <remarks>Threading: as <see cref="ITap"/> (hooks on the loop thread; Dispose once the runtime has stopped).</remarks>
public abstract class TapBase : ITap
{
    /// <summary>Creates a tap named <paramref name="name"/>.</summary>
    protected TapBase(string name) => Name = name;

    /// <inheritdoc/>
    public string Name { get; }
    /// <inheritdoc/>
    public virtual IRequestHook? RequestHook => this as IRequestHook;
    /// <inheritdoc/>
    public virtual IResponseHook? ResponseHook => this as IResponseHook;
    /// <inheritdoc/>
    public virtual IControlHook? ControlHook => this as IControlHook;

    /// <inheritdoc/>
    public virtual void Dispose() => GC.SuppressFinalize(this);
}
