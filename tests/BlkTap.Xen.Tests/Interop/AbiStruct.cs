using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// One C struct and the C# struct that mirrors it, field by field. A field pairs a C member designator
/// (<c>source.foreign.ref</c>, <c>refs[0].domid</c>) with a dotted C# field path (<c>Source.Ref</c>).
/// </summary>
public sealed record AbiStruct(string CType, Type CSharpType, params (string C, string CSharp)[] Fields)
{
    public override string ToString() => CType;

    /// <summary>C printf lines giving sizeof and every offsetof.</summary>
    public IEnumerable<string> CLines()
    {
        yield return CProbe.PrintInt($"sizeof:{CType}", $"sizeof({CType})");
        foreach (var (c, _) in Fields)
            yield return CProbe.PrintInt($"offsetof:{CType}:{c}", $"offsetof({CType}, {c})");
    }

    /// <summary>Unsafe.SizeOf&lt;T&gt;() of the C# struct.</summary>
    public static int SizeOf(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    /// <summary>The offset of a dotted field path, summing Marshal.OffsetOf at each level.</summary>
    public static long OffsetOf(Type t, string path)
    {
        long offset = 0;
        foreach (var name in path.Split('.'))
        {
            offset += (long)Marshal.OffsetOf(t, name);
            t = t.GetField(name, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)!.FieldType;
        }
        return offset;
    }

    /// <summary>Every leaf field path of a C# struct (recursing into nested non-primitive structs).</summary>
    public static IEnumerable<string> LeafPaths(Type t, string prefix = "")
    {
        foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            var path = prefix + f.Name;
            if (f.FieldType.IsValueType && !f.FieldType.IsPrimitive && !f.FieldType.IsEnum && f.FieldType != typeof(nint))
                foreach (var inner in LeafPaths(f.FieldType, path + ".")) yield return inner;
            else
                yield return path;
        }
    }

    /// <summary>Compares this table entry with the C values; returns one message per mismatch (empty when equal).</summary>
    public List<string> Compare(Dictionary<string, string> c)
    {
        var problems = new List<string>();
        long cSize = CProbe.Int(c, $"sizeof:{CType}");
        int csSize = SizeOf(CSharpType);
        if (cSize != csSize) problems.Add($"sizeof({CType}) is {cSize} in C but {CSharpType.Name} is {csSize}");
        foreach (var (cField, csField) in Fields)
        {
            long cOff = CProbe.Int(c, $"offsetof:{CType}:{cField}");
            long csOff = OffsetOf(CSharpType, csField);
            if (cOff != csOff) problems.Add($"offsetof({CType}, {cField}) is {cOff} in C but {CSharpType.Name}.{csField} is at {csOff}");
        }
        var covered = Fields.Select(f => f.CSharp).ToHashSet();
        foreach (var leaf in LeafPaths(CSharpType))
            if (!covered.Contains(leaf)) problems.Add($"{CSharpType.Name}.{leaf} has no C counterpart in the table");
        return problems;
    }
}
