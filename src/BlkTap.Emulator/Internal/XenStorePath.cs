namespace BlkTap.Emulator.Internal;

/// <summary>Validation and matching of xenstore paths.</summary>
/// <remarks>
/// NOTE: docs/misc/xenstore.txt: a path is absolute, '/'-separated, of the characters
/// [a-zA-Z0-9-/_@]; no empty components and no trailing '/'; at most 3072 bytes. Watches may also name
/// the special paths "@introduceDomain" and "@releaseDomain".
/// </remarks>
internal static class XenStorePath
{
    public const int MaxLength = 3072;
    public const string IntroduceDomain = "@introduceDomain";
    public const string ReleaseDomain = "@releaseDomain";

    public static void Validate(string path, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(path, parameterName);
        if (path.Length == 0 || path[0] != '/')
            throw new ArgumentException($"xenstore path '{path}' is not absolute", parameterName);
        if (path.Length > MaxLength)
            throw new ArgumentException($"xenstore path of {path.Length} characters exceeds {MaxLength}", parameterName);
        if (path.Length > 1 && path[^1] == '/')
            throw new ArgumentException($"xenstore path '{path}' ends with '/'", parameterName);
        for (int i = 0; i < path.Length; i++)
        {
            char c = path[i];
            bool ok = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-' or '/' or '_' or '@';
            if (!ok) throw new ArgumentException($"xenstore path '{path}' has the invalid character '{c}' at {i}", parameterName);
            if (c == '/' && i > 0 && path[i - 1] == '/')
                throw new ArgumentException($"xenstore path '{path}' has an empty component", parameterName);
        }
    }

    public static bool IsSpecial(string path) => path is IntroduceDomain or ReleaseDomain;

    /// <summary>True when <paramref name="path"/> is <paramref name="ancestor"/> or below it.</summary>
    public static bool IsAtOrBelow(string path, string ancestor)
    {
        if (ancestor == "/") return path.Length > 0 && path[0] == '/';
        return path.StartsWith(ancestor, StringComparison.Ordinal)
            && (path.Length == ancestor.Length || path[ancestor.Length] == '/');
    }

    public static string Parent(string path)
    {
        int i = path.LastIndexOf('/');
        return i <= 0 ? "/" : path[..i];
    }

    public static string Name(string path) => path[(path.LastIndexOf('/') + 1)..];
}
