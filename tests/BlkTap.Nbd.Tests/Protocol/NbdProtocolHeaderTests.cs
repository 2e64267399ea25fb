using BlkTap.Nbd;
using BlkTap.Testing;
using NUnit.Framework;

namespace BlkTap.Nbd.Tests.Protocol;

/// <summary>Checks our NBD constants against the Linux kernel's &lt;linux/nbd.h&gt; (linux-libc-dev), compiled with gcc.</summary>
public class NbdProtocolHeaderTests
{
    [Test]
    public void Constants_AgainstLinuxNbdHeader_Equal()
    {
        Peers.RequireFile("/usr/include/linux/nbd.h", "install linux-libc-dev");
        const string c = """
            #include <stdio.h>
            #include <linux/nbd.h>
            int main(void) {
              printf("%u %u %d %d %d %d %d %u %u %u %u %u %u %u\n",
                (unsigned)NBD_REQUEST_MAGIC, (unsigned)NBD_REPLY_MAGIC,
                NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_DISC, NBD_CMD_FLUSH, NBD_CMD_TRIM,
                (unsigned)NBD_FLAG_HAS_FLAGS, (unsigned)NBD_FLAG_READ_ONLY, (unsigned)NBD_FLAG_SEND_FLUSH,
                (unsigned)NBD_FLAG_SEND_FUA, (unsigned)NBD_FLAG_SEND_TRIM, (unsigned)NBD_FLAG_CAN_MULTI_CONN,
                (unsigned)NBD_CMD_FLAG_FUA);
              return 0;
            }
            """;
        var exe = NativeProgram.Compile(c, "nbdconst");
        var v = Peers.Run(exe, []).EnsureSuccess("nbdconst").StdOut.Trim().Split(' ').Select(ulong.Parse).ToArray();
        Assert.That(v[0], Is.EqualTo((ulong)NbdMagic.Request));
        Assert.That(v[1], Is.EqualTo((ulong)NbdMagic.SimpleReply));
        Assert.That(v[2..7], Is.EqualTo(new ulong[] { (ulong)NbdCommand.Read, (ulong)NbdCommand.Write, (ulong)NbdCommand.Disconnect, (ulong)NbdCommand.Flush, (ulong)NbdCommand.Trim }));
        Assert.That(v[7..13], Is.EqualTo(new ulong[] { (ulong)NbdTransmissionFlags.HasFlags, (ulong)NbdTransmissionFlags.ReadOnly, (ulong)NbdTransmissionFlags.SendFlush,
            (ulong)NbdTransmissionFlags.SendFua, (ulong)NbdTransmissionFlags.SendTrim, (ulong)NbdTransmissionFlags.CanMultiConn }));
        // NOTE: the kernel header packs command flags into the upper 16 bits of the 32-bit "type" word
        // (linux/nbd.h NBD_CMD_FLAG_FUA = 1 << 16); on the wire they are the separate 16-bit flags field.
        Assert.That(v[13], Is.EqualTo((ulong)NbdCommandFlags.Fua << 16));
    }
}
