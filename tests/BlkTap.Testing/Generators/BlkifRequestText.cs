using System.Globalization;
using System.Text;

namespace BlkTap.Testing.Generators;

/// <summary>
/// One-line descriptions of blkif requests for test failure messages and FsCheck counterexamples
/// (a <see cref="BlkifRequest"/> has no useful <c>ToString</c>). Thread-safe.
/// </summary>
public static class BlkifRequestText
{
    /// <summary>Describes the fields that <paramref name="request"/>'s form carries on the wire.</summary>
    public static string Describe(in BlkifRequest request)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.Append(inv, $"op={(byte)request.Operation}({request.Operation}) id={request.Id} handle={request.Handle} sector={request.Sector}");
        switch (request.Operation)
        {
            case BlkifOperation.Discard:
                sb.Append(inv, $" flag={request.DiscardFlags} nr_sectors={request.DiscardSectorCount}");
                break;
            case BlkifOperation.Indirect:
                sb.Append(inv, $" indirect_op={(byte)request.IndirectOperation} nr_segments={request.SegmentCount} grefs=");
                for (int i = 0; i < BlkifConstants.MaxIndirectPagesPerRequest; i++)
                    sb.Append(inv, $"{(i == 0 ? "" : ",")}{request.IndirectRefs[i]}");
                break;
            default:
                sb.Append(inv, $" nr_segments={request.SegmentCount} seg=[");
                int n = Math.Clamp(request.SegmentCount, 0, BlkifConstants.MaxSegmentsPerRequest);
                for (int i = 0; i < n; i++)
                {
                    var s = request.Segments[i];
                    sb.Append(inv, $"{(i == 0 ? "" : " ")}{s.GrantRef}:{s.FirstSector}-{s.LastSector}");
                }
                sb.Append(']');
                break;
        }
        return sb.ToString();
    }
}
