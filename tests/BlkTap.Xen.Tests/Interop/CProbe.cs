using System.Globalization;
using System.Text;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// Compiles a C program against the installed Xen/Linux headers that prints <c>name=value</c> lines, runs it and
/// parses the lines. Thread-safe.
/// </summary>
internal static class CProbe
{
    /// <summary>The headers every probe includes, in an order that compiles (stdint before Xen's public headers).</summary>
    public const string StandardIncludes = """
        #include <stdint.h>
        #include <stddef.h>
        #include <stdio.h>
        #include <stdbool.h>
        #include <errno.h>
        #include <stdlib.h>
        #include <unistd.h>
        #include <fcntl.h>
        #include <poll.h>
        #include <sys/uio.h>
        #include <sys/mman.h>
        #include <sys/ioctl.h>
        #include <sys/socket.h>
        #include <sys/sendfile.h>
        #include <sys/epoll.h>
        #include <sys/eventfd.h>
        #include <linux/falloc.h>
        #include <linux/magic.h>
        #include <sys/vfs.h>
        #include <sys/syscall.h>
        #include <linux/io_uring.h>
        #include <xen/grant_table.h>
        #include <xen/gntdev.h>
        #include <xen/evtchn.h>
        #include <xen/io/xenbus.h>
        #include <xen/io/protocols.h>
        #include <xen/io/xs_wire.h>
        #include <xenstore.h>
        #include <xenstore_lib.h>
        #include <xengnttab.h>
        #include <xenevtchn.h>

        """;

    /// <summary>Skips (or fails in CI) when gcc or the headers are missing.</summary>
    public static void RequireHeaders()
    {
        Peers.Require("gcc");
        Peers.RequireFile("/usr/include/xen/gntdev.h", "apt-get install linux-libc-dev");
        Peers.RequireFile("/usr/include/xen/evtchn.h", "apt-get install linux-libc-dev");
        Peers.RequireFile("/usr/include/xen/io/xenbus.h", "apt-get install libxen-dev");
        Peers.RequireFile("/usr/include/xenstore.h", "apt-get install libxen-dev");
    }

    /// <summary>Builds a program whose main() runs <paramref name="body"/> (printf statements).</summary>
    public static string Program(string body, string prelude = "") =>
        StandardIncludes + prelude + "\nint main(void)\n{\n" + body + "    return 0;\n}\n";

    /// <summary>A printf statement printing an integer expression as <c>key=value</c>.</summary>
    public static string PrintInt(string key, string cExpression) =>
        $"    printf(\"%s=%lld\\n\", \"{key}\", (long long)({cExpression}));\n";

    /// <summary>A printf statement printing a string expression as <c>key=value</c>.</summary>
    public static string PrintString(string key, string cExpression) =>
        $"    printf(\"%s=%s\\n\", \"{key}\", {cExpression});\n";

    /// <summary>Compiles and runs <paramref name="source"/> and returns its <c>key=value</c> lines.</summary>
    public static Dictionary<string, string> Run(string source, string name, params string[] gccArgs)
    {
        RequireHeaders();
        var exe = NativeProgram.Compile(source, name, gccArgs);
        var result = Peers.Run(exe, []).EnsureSuccess(name);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = line.IndexOf('=');
            Assert.That(eq, Is.GreaterThan(0), $"probe printed a line without '=': {line}");
            values[line[..eq]] = line[(eq + 1)..];
        }
        return values;
    }

    /// <summary>Parses an integer value printed by <see cref="PrintInt"/>.</summary>
    public static long Int(Dictionary<string, string> values, string key)
    {
        Assert.That(values.ContainsKey(key), $"the C probe printed no value for {key}");
        return long.Parse(values[key], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
    }

    /// <summary>Joins lines of C.</summary>
    public static string Lines(IEnumerable<string> lines)
    {
        var sb = new StringBuilder();
        foreach (var l in lines) sb.Append(l);
        return sb.ToString();
    }
}
