namespace BlkTap.Abstractions.Tests.Abi;

/// <summary>
/// Finds where the codec really puts a field: encodes a request twice, once with the field at zero and
/// once set to a marker whose every byte is non-zero, and returns the first differing byte. So the
/// layout comparison covers the offsets hard-coded in the codec, not only the numbers in
/// <see cref="BlkifLayout"/>. Returns -1 when the marker did not land as exactly
/// <c>width</c> contiguous bytes. Pure: thread-safe.
/// </summary>
internal static class WireProbe
{
    public delegate void Mutate(ref BlkifRequest request);

    /// <summary>Offset at which EncodeRequest writes the field <paramref name="set"/> changes.</summary>
    public static long RequestField(BlkifLayout layout, BlkifOperation op, int width, Mutate set, int segmentCount = 0)
    {
        var baseline = new BlkifRequest { Operation = op, SegmentCount = segmentCount };
        if (op == BlkifOperation.Indirect) baseline.IndirectOperation = BlkifOperation.Read;
        var changed = baseline;
        set(ref changed);
        var a = new byte[layout.RequestSize];
        var b = new byte[layout.RequestSize];
        BlkifCodec.EncodeRequest(baseline, layout, a);
        BlkifCodec.EncodeRequest(changed, layout, b);
        return Diff(a, b, width);
    }

    /// <summary>Offset at which EncodeSegment writes the field <paramref name="set"/> changes.</summary>
    public static long SegmentField(int width, Func<BlkifSegment> set)
    {
        var a = new byte[BlkifSegment.Size];
        var b = new byte[BlkifSegment.Size];
        BlkifCodec.EncodeSegment(default, a);
        BlkifCodec.EncodeSegment(set(), b);
        return Diff(a, b, width);
    }

    /// <summary>Offset at which EncodeResponse writes the field that differs between default and <paramref name="changed"/>.</summary>
    public static long ResponseField(BlkifLayout layout, int width, BlkifResponse changed)
    {
        var a = new byte[layout.ResponseSize];
        var b = new byte[layout.ResponseSize];
        BlkifCodec.EncodeResponse(default, layout, a);
        BlkifCodec.EncodeResponse(changed, layout, b);
        return Diff(a, b, width);
    }

    private static long Diff(byte[] a, byte[] b, int width)
    {
        int first = -1, last = -1;
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] == b[i]) continue;
            if (first < 0) first = i;
            last = i;
        }
        return first >= 0 && last - first + 1 == width ? first : -1;
    }
}
