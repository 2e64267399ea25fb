using BlkTap.Chains;

namespace BlkTap.SamplePlugin;

/// <summary><c>count</c>: a plugin interposer that counts requests by operation and writes a summary on disconnect.</summary>
public sealed class CountingTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "count";
    /// <inheritdoc/>
    public string Description => "count requests by operation (sample plugin)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } = [new("label", "a label for the summary line")];
    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context) => new CountingTap(spec.Get("label") ?? "count", context.Output);
}

/// <summary>The <c>count</c> tap. Loop thread only.</summary>
public sealed class CountingTap(string label, TextWriter output) : TapBase("count"), IRequestHook, IControlHook
{
    private readonly Dictionary<BlkifOperation, long> _counts = new();

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request)
    {
        _counts[request.Operation] = _counts.GetValueOrDefault(request.Operation) + 1;
        return HookResult.Pass;
    }

    /// <inheritdoc/>
    public void OnControl(ControlEvent e)
    {
        if (e.Kind == ControlEventKind.Disconnect)
            output.WriteLine($"{label}: {string.Join(", ", _counts.OrderBy(k => k.Key).Select(k => $"{k.Key}={k.Value}"))}");
    }
}
