using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace BlkTap.Nbd;

/// <summary>How an <see cref="NbdUri"/> reaches its server.</summary>
public enum NbdTransport
{
    /// <summary>TCP to <see cref="NbdUri.Host"/>:<see cref="NbdUri.Port"/>.</summary>
    Tcp,
    /// <summary>A Unix domain stream socket at <see cref="NbdUri.SocketPath"/>.</summary>
    Unix,
}

/// <summary>
/// A parsed NBD URI: <c>nbd://host[:port]/export</c> (default port 10809) or
/// <c>nbd+unix:///export?socket=PATH</c>. TLS schemes (<c>nbds</c>, <c>nbds+unix</c>) are rejected.
/// NOTE: syntax from the NBD URI specification (NetworkBlockDevice/nbd doc/uri.md): the export name is the
/// percent-decoded path without its leading '/'; unknown query parameters are ignored.
/// Immutable; thread-safe.
/// </summary>
public sealed class NbdUri
{
    private NbdUri(NbdTransport transport, string host, int port, string? socketPath, string exportName)
    {
        Transport = transport;
        Host = host;
        Port = port;
        SocketPath = socketPath;
        ExportName = exportName;
    }

    /// <summary>TCP or Unix socket.</summary>
    public NbdTransport Transport { get; }

    /// <summary>Host name or address for TCP (without IPv6 brackets); empty for Unix sockets.</summary>
    public string Host { get; }

    /// <summary>TCP port (10809 when omitted); 0 for Unix sockets.</summary>
    public int Port { get; }

    /// <summary>Unix socket path, or null for TCP.</summary>
    public string? SocketPath { get; }

    /// <summary>The export name (may be empty: the server's default export).</summary>
    public string ExportName { get; }

    /// <summary>Builds a TCP location.</summary>
    public static NbdUri ForTcp(string host, int port, string exportName = "")
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        if (port is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), port, "TCP port must be 1..65535");
        return new NbdUri(NbdTransport.Tcp, host, port, null, exportName ?? "");
    }

    /// <summary>Builds a Unix socket location.</summary>
    public static NbdUri ForUnix(string socketPath, string exportName = "")
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        return new NbdUri(NbdTransport.Unix, "", 0, socketPath, exportName ?? "");
    }

    /// <summary>Parses an NBD URI.</summary>
    /// <exception cref="FormatException">The text is not a supported NBD URI; the message names the problem.</exception>
    public static NbdUri Parse(string text)
    {
        if (TryParse(text, out var uri, out var error)) return uri!;
        throw new FormatException(error);
    }

    /// <summary>Parses an NBD URI; on failure returns false and a message naming the problem.</summary>
    public static bool TryParse(string? text, out NbdUri? uri, out string? error)
    {
        uri = null;
        error = null;
        if (string.IsNullOrWhiteSpace(text)) { error = "empty NBD URI"; return false; }
        int sep = text.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0) { error = $"'{text}' is not an NBD URI (expected nbd://host[:port]/export or nbd+unix:///export?socket=PATH)"; return false; }
        string scheme = text[..sep].ToLowerInvariant();
        string rest = text[(sep + 3)..];
        switch (scheme)
        {
            case "nbd": case "nbd+tcp": case "nbd+unix": break;
            case "nbds": case "nbds+tcp": case "nbds+unix": case "nbds+vsock":
                error = $"'{text}': TLS not supported (scheme '{scheme}'); use nbd:// or nbd+unix://"; return false;
            case "nbd+vsock":
                error = $"'{text}': vsock transport not supported"; return false;
            default:
                error = $"'{text}': unknown URI scheme '{scheme}' (expected nbd or nbd+unix)"; return false;
        }

        string query = "";
        int q = rest.IndexOf('?');
        if (q >= 0) { query = rest[(q + 1)..]; rest = rest[..q]; }
        int hash = query.IndexOf('#');
        if (hash >= 0) query = query[..hash];
        int frag = rest.IndexOf('#');
        if (frag >= 0) rest = rest[..frag];

        int slash = rest.IndexOf('/');
        string authority = slash < 0 ? rest : rest[..slash];
        string path = slash < 0 ? "" : rest[(slash + 1)..];
        string exportName;
        try { exportName = Uri.UnescapeDataString(path); }
        catch (UriFormatException e) { error = $"'{text}': bad export name escape: {e.Message}"; return false; }
        if (exportName.Length > NbdMagic.MaxString) { error = $"'{text}': export name longer than {NbdMagic.MaxString} bytes"; return false; }
        if (exportName.Contains('\0')) { error = $"'{text}': export name contains NUL"; return false; }

        string? socket = null;
        foreach (var part in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            string key = eq < 0 ? part : part[..eq];
            string value = eq < 0 ? "" : part[(eq + 1)..];
            if (key == "socket") socket = Uri.UnescapeDataString(value);
            else if (key.StartsWith("tls", StringComparison.Ordinal))
            {
                error = $"'{text}': TLS not supported (query parameter '{key}')"; return false;
            }
        }

        if (scheme == "nbd+unix")
        {
            if (authority.Length != 0) { error = $"'{text}': nbd+unix URI must not name a host ('{authority}'); write nbd+unix:///export?socket=PATH"; return false; }
            if (string.IsNullOrEmpty(socket)) { error = $"'{text}': nbd+unix URI needs ?socket=PATH"; return false; }
            uri = new NbdUri(NbdTransport.Unix, "", 0, socket, exportName);
            return true;
        }

        if (socket != null) { error = $"'{text}': ?socket= is only valid with nbd+unix://"; return false; }
        if (authority.Contains('@')) { error = $"'{text}': user information is not supported in NBD URIs"; return false; }
        string host;
        string? portText = null;
        if (authority.StartsWith('['))
        {
            int close = authority.IndexOf(']');
            if (close < 0) { error = $"'{text}': unterminated IPv6 address"; return false; }
            host = authority[1..close];
            string after = authority[(close + 1)..];
            if (after.Length > 0)
            {
                if (after[0] != ':') { error = $"'{text}': junk after IPv6 address"; return false; }
                portText = after[1..];
            }
        }
        else
        {
            int colon = authority.LastIndexOf(':');
            host = colon < 0 ? authority : authority[..colon];
            if (colon >= 0) portText = authority[(colon + 1)..];
        }
        if (host.Length == 0) host = "localhost";
        int port = NbdMagic.DefaultPort;
        if (portText != null && portText.Length > 0)
        {
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
            {
                error = $"'{text}': bad port '{portText}' (expected 1..65535)"; return false;
            }
        }
        uri = new NbdUri(NbdTransport.Tcp, host, port, null, exportName);
        return true;
    }

    /// <summary>The endpoint to connect to (resolving nothing: a host name yields a <see cref="DnsEndPoint"/>).</summary>
    public EndPoint ToEndPoint() => Transport == NbdTransport.Unix
        ? new UnixDomainSocketEndPoint(SocketPath!)
        : IPAddress.TryParse(Host, out var ip) ? new IPEndPoint(ip, Port) : new DnsEndPoint(Host, Port);

    /// <summary>Formats the location back as a URI.</summary>
    public override string ToString()
    {
        string export = Uri.EscapeDataString(ExportName);
        // NOTE: uri.md: the socket path is a query value, so %, &, # and friends must be percent-encoded; keep '/' readable.
        if (Transport == NbdTransport.Unix) return $"nbd+unix:///{export}?socket={Uri.EscapeDataString(SocketPath!).Replace("%2F", "/", StringComparison.Ordinal)}";
        string host = Host.Contains(':') ? "[" + Host + "]" : Host;
        return Port == NbdMagic.DefaultPort ? $"nbd://{host}/{export}" : $"nbd://{host}:{Port.ToString(CultureInfo.InvariantCulture)}/{export}";
    }
}
