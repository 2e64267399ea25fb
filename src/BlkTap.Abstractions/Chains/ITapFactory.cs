namespace BlkTap.Chains;

/// <summary>
/// Makes taps of one kind from a spec. The built-in factories live in BlkTap.Examples; plugin assemblies
/// found at run time contribute more (any public non-abstract class implementing this interface with
/// a public parameterless constructor).
/// </summary>
/// <remarks>Threading: <see cref="Create"/> is called on the CLI's thread before the runtime starts.</remarks>
public interface ITapFactory
{
    /// <summary>The name used in <c>--tap NAME</c>.</summary>
    string Name { get; }
    /// <summary>One line on what the tap does.</summary>
    string Description { get; }
    /// <summary>Whether the tap serves requests itself (img, aio, mem, nbd) rather than passing them on.</summary>
    bool IsTerminator { get; }
    /// <summary>The options it accepts.</summary>
    IReadOnlyList<TapOptionInfo> Options { get; }
    /// <summary>Creates the tap; throws <see cref="ChainSpecException"/> for bad options or missing files.</summary>
    ITap Create(TapSpec spec, TapContext context);
}
