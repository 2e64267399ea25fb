using BlkTap.Nbd;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Nbd.Tests.Protocol;

/// <summary>NBD URI parsing (NetworkBlockDevice/nbd doc/uri.md forms we support).</summary>
public class NbdUriTests
{
    [TestCase("nbd://example.com/disk", "example.com", 10809, "disk")]
    [TestCase("nbd://example.com:1234/disk", "example.com", 1234, "disk")]
    [TestCase("nbd://127.0.0.1", "127.0.0.1", 10809, "")]
    [TestCase("nbd://127.0.0.1/", "127.0.0.1", 10809, "")]
    [TestCase("nbd://[::1]:5000/a%20b", "::1", 5000, "a b")]
    [TestCase("nbd+tcp://host/x/y", "host", 10809, "x/y")]
    [TestCase("NBD://host:10810/e", "host", 10810, "e")]
    public void Parse_TcpForms_GiveHostPortExport(string text, string host, int port, string export)
    {
        var uri = NbdUri.Parse(text);
        Assert.That(uri.Transport, Is.EqualTo(NbdTransport.Tcp));
        Assert.That(uri.Host, Is.EqualTo(host));
        Assert.That(uri.Port, Is.EqualTo(port));
        Assert.That(uri.ExportName, Is.EqualTo(export));
        Assert.That(uri.SocketPath, Is.Null);
    }

    [TestCase("nbd+unix:///disk?socket=/run/x.sock", "/run/x.sock", "disk")]
    [TestCase("nbd+unix:///?socket=/tmp/s", "/tmp/s", "")]
    [TestCase("nbd+unix://?socket=/tmp/s", "/tmp/s", "")]
    [TestCase("nbd+unix:///e?socket=%2Ftmp%2Fa%20b&other=1", "/tmp/a b", "e")]
    public void Parse_UnixForms_GiveSocketAndExport(string text, string socket, string export)
    {
        var uri = NbdUri.Parse(text);
        Assert.That(uri.Transport, Is.EqualTo(NbdTransport.Unix));
        Assert.That(uri.SocketPath, Is.EqualTo(socket));
        Assert.That(uri.ExportName, Is.EqualTo(export));
        Assert.That(uri.ToEndPoint(), Is.TypeOf<System.Net.Sockets.UnixDomainSocketEndPoint>());
    }

    [TestCase("nbds://host/disk", "TLS not supported")]
    [TestCase("nbds+unix:///disk?socket=/s", "TLS not supported")]
    [TestCase("nbd://host/disk?tls-certificates=/x", "TLS not supported")]
    [TestCase("http://host/disk", "unknown URI scheme")]
    [TestCase("host:10809", "not an NBD URI")]
    [TestCase("", "empty")]
    [TestCase("nbd://host:0/x", "bad port")]
    [TestCase("nbd://host:65536/x", "bad port")]
    [TestCase("nbd://host:12ab/x", "bad port")]
    [TestCase("nbd+unix:///disk", "needs ?socket=")]
    [TestCase("nbd+unix://host/disk?socket=/s", "must not name a host")]
    [TestCase("nbd://host/disk?socket=/s", "only valid with nbd+unix")]
    [TestCase("nbd://[::1/x", "unterminated IPv6")]
    [TestCase("nbd://user@host/x", "user information")]
    [TestCase("nbd+vsock://1:2/x", "vsock")]
    public void Parse_BadInput_FormatExceptionNamesTheProblem(string text, string problem)
    {
        var ex = Assert.Throws<FormatException>(() => NbdUri.Parse(text));
        Assert.That(ex!.Message, Does.Contain(problem));
        Assert.That(NbdUri.TryParse(text, out var uri, out var error), Is.False);
        Assert.That(uri, Is.Null);
        Assert.That(error, Does.Contain(problem));
    }

    [Test]
    public void Parse_ExportNameLongerThan4096_Rejected()
    {
        var ex = Assert.Throws<FormatException>(() => NbdUri.Parse("nbd://h/" + new string('a', 4097)));
        Assert.That(ex!.Message, Does.Contain("4096"));
    }

    /// <summary>Any export name and port survive ToString then Parse, for both transports.</summary>
    [FsCheck.NUnit.Property(MaxTest = 300, QuietOnSuccess = true)]
    public bool ToStringThenParse_AnyExportPortAndSocketPath_RoundTrips(NonNull<string> export, PositiveInt port, bool unix, NonEmptyString socket)
    {
        string name = export.Get.Replace("\0", "");
        string path = "/" + socket.Get.Replace("\0", "");
        if (name.Length > 1000 || !IsWellFormedUtf16(name) || !IsWellFormedUtf16(path)) return true;
        int p = port.Get % 65535 + 1;
        var uri = unix ? NbdUri.ForUnix(path, name) : NbdUri.ForTcp("10.1.2.3", p, name);
        var back = NbdUri.Parse(uri.ToString());
        return back.Transport == uri.Transport && back.ExportName == name && back.Port == uri.Port
            && back.Host == uri.Host && back.SocketPath == uri.SocketPath;
    }

    /// <summary>Parsing arbitrary text never throws anything but FormatException.</summary>
    [FsCheck.NUnit.Property(MaxTest = 500, QuietOnSuccess = true)]
    public void Parse_ArbitraryText_OnlyFormatException(string text)
    {
        foreach (var candidate in new[] { text, "nbd://" + text, "nbd+unix://" + text, "nbd+unix:///x?socket=" + text })
        {
            try { NbdUri.Parse(candidate); }
            catch (FormatException) { }
        }
    }

    private static bool IsWellFormedUtf16(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i])) { if (i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1])) return false; i++; }
            else if (char.IsLowSurrogate(s[i])) return false;
        }
        return true;
    }
}
