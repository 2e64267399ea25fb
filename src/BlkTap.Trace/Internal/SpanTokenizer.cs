namespace BlkTap.Trace.Internal;

/// <summary>Splits a line into whitespace- (or separator-) delimited tokens without allocating.</summary>
internal ref struct SpanTokenizer
{
    private ReadOnlySpan<char> _rest;
    private readonly char _separator; // '\0' = any whitespace

    public SpanTokenizer(ReadOnlySpan<char> line, char separator = '\0')
    {
        _rest = line;
        _separator = separator;
    }

    /// <summary>The unconsumed remainder, leading whitespace removed.</summary>
    public readonly ReadOnlySpan<char> Rest => _separator == '\0' ? _rest.TrimStart() : _rest;

    public bool Next(out ReadOnlySpan<char> token)
    {
        if (_separator == '\0')
        {
            _rest = _rest.TrimStart();
            if (_rest.IsEmpty) { token = default; return false; }
            var i = 0;
            while (i < _rest.Length && !char.IsWhiteSpace(_rest[i])) i++;
            token = _rest[..i];
            _rest = _rest[i..];
            return true;
        }
        if (_rest.IsEmpty && _done) { token = default; return false; }
        var j = _rest.IndexOf(_separator);
        if (j < 0) { token = _rest; _rest = default; _done = true; return true; }
        token = _rest[..j];
        _rest = _rest[(j + 1)..];
        return true;
    }

    private bool _done;
}
