using FsCheck;
using FsCheck.Fluent;

namespace BlkTap.Testing.Generators;

/// <summary>How a generated guest's session ends.</summary>
public enum SessionEnd
{
    /// <summary>The frontend closes the device the xenbus way (Closing, Closed).</summary>
    Disconnect,
    /// <summary>The guest domain is destroyed with the device connected (no goodbye).</summary>
    Destroy,
    /// <summary>The session stays connected until the test tears the system down.</summary>
    StayConnected,
}

/// <summary>One guest of a <see cref="ControlScenario"/>.</summary>
/// <param name="ImageId">The image identifier written to xenstore <c>params</c> (what the attach event carries).</param>
/// <param name="Writes">One-sector writes the guest makes while connected (0..4).</param>
/// <param name="End">How its session ends.</param>
public sealed record GuestPlan(string ImageId, int Writes, SessionEnd End)
{
    /// <inheritdoc />
    public override string ToString() => $"('{ImageId}', {Writes} writes, {End})";
}

/// <summary>
/// A control-event scenario: guests that connect in <see cref="ConnectOrder"/>, do a little I/O, and end
/// in <see cref="EndOrder"/> (each by its <see cref="GuestPlan.End"/>). What every tap's control hook
/// must cope with: whatever the order, each session sees Attach (with its image id), then Connect, then
/// exactly one Disconnect, and no event for a session after its Disconnect.
/// </summary>
/// <param name="Guests">The guests.</param>
/// <param name="ConnectOrder">A permutation of guest indices: the order their frontends start connecting.</param>
/// <param name="EndOrder">A permutation of guest indices: the order their sessions end.</param>
/// <param name="ConcurrentConnects">Whether every frontend starts connecting before any finished (else one after the other).</param>
public sealed record ControlScenario(IReadOnlyList<GuestPlan> Guests, IReadOnlyList<int> ConnectOrder, IReadOnlyList<int> EndOrder, bool ConcurrentConnects)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"guests [{string.Join(", ", Guests)}] connect [{string.Join(",", ConnectOrder)}]{(ConcurrentConnects ? " concurrently" : "")} end [{string.Join(",", EndOrder)}]";
}

/// <summary>
/// FsCheck 3 generators for a tap's control side: image identifiers (as toolstacks write them: paths,
/// URIs, with spaces, commas, colons and non-ASCII) and whole attach/connect/disconnect scenarios.
/// </summary>
/// <remarks>Thread-safe: generators are immutable values.</remarks>
public static class ControlGenerators
{
    /// <summary>Image identifiers: plain names, absolute paths, NBD URIs, and awkward characters.</summary>
    public static Gen<string> ImageId { get; } = Gen.OneOf(
        Gen.Choose(0, 999).Select(i => $"disk{i}"),
        Gen.Choose(0, 999).Select(i => $"/var/lib/xen/images/vm{i}.raw"),
        Gen.Choose(0, 999).Select(i => $"nbd+unix:///export{i}?socket=/run/nbd{i}.sock"),
        Gen.Elements("img with spaces.raw", "a,b:c=d", "ümlaut-диск.qcow", "x", "/dev/vg0/lv-1", "aio:/srv/disk.img"));

    /// <summary>How a session ends.</summary>
    public static Gen<SessionEnd> End { get; } = Gen.Frequency(
        (3, Gen.Constant(SessionEnd.Disconnect)), (2, Gen.Constant(SessionEnd.Destroy)), (1, Gen.Constant(SessionEnd.StayConnected)));

    /// <summary>One guest.</summary>
    public static Gen<GuestPlan> Guest { get; } =
        from id in ImageId
        from writes in Gen.Choose(0, 4)
        from end in End
        select new GuestPlan(id, writes, end);

    /// <summary>A random permutation of 0..<paramref name="n"/>-1.</summary>
    public static Gen<int[]> Permutation(int n) =>
        Gen.Choose(0, int.MaxValue).ArrayOf(n).Select(keys =>
        {
            var order = Enumerable.Range(0, n).ToArray();
            Array.Sort(keys, order);
            return order;
        });

    /// <summary>Scenarios with 1..<paramref name="maxGuests"/> guests.</summary>
    public static Gen<ControlScenario> Scenario(int maxGuests = 4) =>
        from n in Gen.Choose(1, maxGuests)
        from guests in Guest.ArrayOf(n)
        from connect in Permutation(n)
        from end in Permutation(n)
        from concurrent in Gen.Elements(true, false)
        select new ControlScenario(guests, connect, end, concurrent);
}
