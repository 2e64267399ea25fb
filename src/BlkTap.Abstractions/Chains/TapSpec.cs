using System.Globalization;

namespace BlkTap.Chains;

/// <summary>
/// One <c>--tap NAME[:key=value[,key=value...]]</c> from the command line: a tap name and its options.
/// </summary>
/// <remarks>Immutable; thread-safe.</remarks>
public sealed class TapSpec
{
    private TapSpec(string name, IReadOnlyDictionary<string, string> options, string text)
    {
        Name = name;
        Options = options;
        Text = text;
    }

    /// <summary>The tap name.</summary>
    public string Name { get; }
    /// <summary>The options, by key (case-sensitive).</summary>
    public IReadOnlyDictionary<string, string> Options { get; }
    /// <summary>The spec as written.</summary>
    public string Text { get; }

    /// <summary>Parses a spec; throws <see cref="ChainSpecException"/> naming the problem.</summary>
    public static TapSpec Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new ChainSpecException("empty --tap value");
        int colon = text.IndexOf(':');
        var name = (colon < 0 ? text : text[..colon]).Trim();
        if (name.Length == 0) throw new ChainSpecException($"--tap '{text}': missing tap name before ':'");
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        if (colon >= 0)
        {
            var rest = text[(colon + 1)..];
            if (rest.Length == 0) throw new ChainSpecException($"--tap '{text}': nothing after ':'");
            string? lastKey = null;
            foreach (var part in SplitOptions(rest))
            {
                int eq = part.IndexOf('=');
                if (eq < 0 && lastKey != null)
                {
                    // A list value: "ops=read,write" continues the previous option.
                    options[lastKey] += "," + part;
                    continue;
                }
                if (eq <= 0) throw new ChainSpecException($"--tap '{text}': option '{part}' is not key=value");
                var key = part[..eq].Trim();
                if (options.ContainsKey(key)) throw new ChainSpecException($"--tap '{text}': option '{key}' given twice");
                options[key] = part[(eq + 1)..];
                lastKey = key;
            }
        }
        return new TapSpec(name, options, text);
    }

    // Options are split on ','; a piece without '=' belongs to the previous option's value (lists).
    private static IEnumerable<string> SplitOptions(string s) => s.Split(',');

    /// <summary>A required string option.</summary>
    public string Require(string key) =>
        Options.TryGetValue(key, out var v) && v.Length > 0 ? v : throw new ChainSpecException($"tap '{Name}': missing option '{key}=...'");

    /// <summary>An optional string option.</summary>
    public string? Get(string key) => Options.TryGetValue(key, out var v) ? v : null;

    /// <summary>An optional boolean option (true/false/1/0/yes/no).</summary>
    public bool GetBool(string key, bool fallback)
    {
        if (!Options.TryGetValue(key, out var v)) return fallback;
        return v.ToLowerInvariant() switch
        {
            "1" or "true" or "yes" or "on" => true,
            "0" or "false" or "no" or "off" => false,
            _ => throw new ChainSpecException($"tap '{Name}': option '{key}={v}' is not true or false"),
        };
    }

    /// <summary>An optional number option.</summary>
    public double GetDouble(string key, double fallback)
    {
        if (!Options.TryGetValue(key, out var v)) return fallback;
        return double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)
            ? d : throw new ChainSpecException($"tap '{Name}': option '{key}={v}' is not a number");
    }

    /// <summary>An optional integer option.</summary>
    public long GetInt64(string key, long fallback)
    {
        if (!Options.TryGetValue(key, out var v)) return fallback;
        return long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)
            ? n : throw new ChainSpecException($"tap '{Name}': option '{key}={v}' is not an integer");
    }

    /// <summary>An optional size option with an optional K, M, G or T suffix (powers of 1024).</summary>
    public long GetSize(string key, long fallback)
    {
        if (!Options.TryGetValue(key, out var v)) return fallback;
        return Sizes.TryParse(v, out var n) ? n : throw new ChainSpecException($"tap '{Name}': option '{key}={v}' is not a size (like 64M or 1G)");
    }

    /// <inheritdoc/>
    public override string ToString() => Text;
}
