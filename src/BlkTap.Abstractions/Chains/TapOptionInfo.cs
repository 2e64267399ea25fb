namespace BlkTap.Chains;

/// <summary>One option a tap accepts, for <c>blktap taps</c> and for rejecting unknown options.</summary>
/// <param name="Key">The option key.</param>
/// <param name="Description">What it does, with its default.</param>
/// <param name="Required">Whether the tap refuses to start without it.</param>
public sealed record TapOptionInfo(string Key, string Description, bool Required = false);
