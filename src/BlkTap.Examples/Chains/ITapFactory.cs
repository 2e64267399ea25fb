namespace BlkTap.Examples;

/// <summary>One option a tap accepts, for <c>blktap taps</c> and for rejecting unknown options.</summary>
/// <param name="Key">The option key.</param>
/// <param name="Description">What it does, with its default.</param>
/// <param name="Required">Whether the tap refuses to start without it.</param>
public sealed record TapOptionInfo(string Key, string Description, bool Required = false);

/// <summary>
/// Makes taps of one kind from a spec. Built-in factories live in this assembly; plugin assemblies
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

/// <summary>What a tap may need from its host.</summary>
public sealed class TapContext
{
    /// <summary>Where taps that print (dump, watch) write; defaults to standard output.</summary>
    public TextWriter Output { get; init; } = Console.Out;
    /// <summary>A seed for taps that draw random numbers (error, delay), so runs reproduce.</summary>
    public int Seed { get; init; } = 1;
}
