namespace BlkTap.Chains;

/// <summary>
/// The <c>--tap</c> specs of the chain a host serves, frontend side first, as registered in a container by
/// <c>services.AddBlkTap(specs, ...)</c>; hosted services name the chain with <see cref="Text"/> in their logs.
/// </summary>
/// <param name="Specs">The specs, frontend side first.</param>
public sealed record TapChainSpecs(IReadOnlyList<TapSpec> Specs)
{
    /// <summary>The chain as the verbs print it: the specs' text joined by " -> ".</summary>
    public string Text => string.Join(" -> ", Specs.Select(s => s.Text));

    /// <summary>The same as <see cref="Text"/>.</summary>
    public override string ToString() => Text;
}
