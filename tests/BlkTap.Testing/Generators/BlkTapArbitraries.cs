using FsCheck;
using FsCheck.Fluent;

namespace BlkTap.Testing.Generators;

/// <summary>
/// FsCheck arbitraries for blkif types, picked by parameter type. Use in a property as
/// <c>[FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) })]</c>, then declare
/// parameters of these types:
/// <list type="bullet">
/// <item><see cref="BlkifRequest"/>: any request, valid or with one fault (from <see cref="BlkifGenerators.AnyCase"/>).</item>
/// <item><see cref="RequestCase"/>, <see cref="ValidRequest"/>, <see cref="MalformedRequest"/>: a request, its disk, and the verdict.</item>
/// <item><see cref="EncodableRequest"/>: any form and ABI, every field fits the wire.</item>
/// <item><see cref="RingSlot"/>: raw slot bytes; <see cref="RingGeometry"/>: ring size and a start index near 2^32.</item>
/// <item><see cref="BlkifProtocol"/>: either ABI.</item>
/// <item><see cref="ControlScenario"/>: guests' connect and end orders, image ids (<see cref="ControlGenerators"/>).</item>
/// <item><see cref="ChainCase"/>: a valid or invalid chain of built-in taps (<see cref="ChainGenerators"/>); build it
/// from <see cref="ChainResources.Create"/>, which makes the files and NBD servers it names.</item>
/// <item><see cref="NbdHeaderCase"/>, <see cref="NbdHandshakeScript"/>: NBD bytes and the verdict (<see cref="NbdGenerators"/>).</item>
/// </list>
/// Nothing shrinks: counterexamples print in full through the types' <c>ToString</c>. Thread-safe.
/// </summary>
public static class BlkTapArbitraries
{
    /// <summary>Either ABI.</summary>
    public static Arbitrary<BlkifProtocol> Protocol() => Arb.From(BlkifGenerators.Protocol);

    /// <summary>Any request, valid or malformed.</summary>
    public static Arbitrary<BlkifRequest> Request() => Arb.From(BlkifGenerators.AnyCase.Select(c => c.Request));

    /// <summary>Valid and malformed request cases with their expected verdict.</summary>
    public static Arbitrary<RequestCase> Case() => Arb.From(BlkifGenerators.AnyCase);

    /// <summary>Valid request cases.</summary>
    public static Arbitrary<ValidRequest> Valid() => Arb.From(BlkifGenerators.ValidCase.Select(c => new ValidRequest(c)));

    /// <summary>Request cases with one injected fault.</summary>
    public static Arbitrary<MalformedRequest> Malformed() => Arb.From(BlkifGenerators.MalformedCase.Select(c => new MalformedRequest(c)));

    /// <summary>Requests that round-trip through the codec.</summary>
    public static Arbitrary<EncodableRequest> Encodable() => Arb.From(BlkifGenerators.Encodable);

    /// <summary>Raw request slots.</summary>
    public static Arbitrary<RingSlot> Slot() => Arb.From(BlkifGenerators.Slot);

    /// <summary>Ring geometries with start indices near the 32-bit wrap.</summary>
    public static Arbitrary<RingGeometry> Geometry() => Arb.From(BlkifGenerators.Geometry);

    /// <summary>Control-event scenarios with up to four guests.</summary>
    public static Arbitrary<ControlScenario> Control() => Arb.From(ControlGenerators.Scenario());

    /// <summary>Valid and invalid chains of the built-in taps.</summary>
    public static Arbitrary<ChainCase> Chain() => Arb.From(ChainGenerators.Any(BlkTap.Examples.ExampleTaps.CreateRegistry()));

    /// <summary>NBD transmission request headers, valid and malformed.</summary>
    public static Arbitrary<NbdHeaderCase> NbdHeader() => Arb.From(NbdGenerators.HeaderCase);

    /// <summary>NBD option haggling scripts with the server's expected answers.</summary>
    public static Arbitrary<NbdHandshakeScript> NbdHandshake() => Arb.From(NbdGenerators.Handshake);
}
