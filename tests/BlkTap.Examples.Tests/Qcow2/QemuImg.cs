using BlkTap.Examples.Qcow2;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Qcow2;

/// <summary>qemu-img and qemu-io as the judges of the qcow2 tests (required in CI, ignored locally when missing).</summary>
internal static class QemuImg
{
    public static string Img => Peers.Require("qemu-img", "apt-get install -y qemu-utils (./test.sh installs it)");
    public static string Io => Peers.Require("qemu-io", "apt-get install -y qemu-utils (./test.sh installs it)");

    /// <summary>qemu-img create -f qcow2 with a cluster size, a refcount width, a version (2: compat=0.10) and an optional raw backing file.</summary>
    public static void Create(string path, long size, int clusterSize, string? rawBacking = null, int refcountBits = 16, int version = 3)
    {
        string compat = version == 2 ? "0.10" : "1.1";
        var args = new List<string> { "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize},refcount_bits={refcountBits},compat={compat}" };
        if (rawBacking != null) args.AddRange(["-b", rawBacking, "-F", "raw"]);
        args.AddRange([path, size.ToString()]);
        Peers.Run(Img, args).EnsureSuccess("qemu-img create");
    }

    /// <summary>qemu-img check; returns null when it finds no error and no leak, else what it said.</summary>
    public static string? Check(string path)
    {
        var r = Peers.Run(Img, ["check", "-f", "qcow2", path]);
        return r.ExitCode == 0 && !r.StdOut.Contains("leaked", StringComparison.Ordinal) ? null : $"qemu-img check exited {r.ExitCode}: {r.StdOut} {r.StdErr}";
    }

    /// <summary>qemu-img compare of a qcow2 image against a raw image; returns null when identical, else what it said.</summary>
    public static string? Compare(string qcow2, string raw)
    {
        var r = Peers.Run(Img, ["compare", "-f", "qcow2", "-F", "raw", qcow2, raw]);
        return r.ExitCode == 0 ? null : $"qemu-img compare exited {r.ExitCode}: {r.StdOut} {r.StdErr}";
    }
}
