using System.Globalization;

namespace BlkTap;

/// <summary>Guest disk names (<c>xvdb</c>, <c>sdc</c>, <c>51728</c>) and the xenbus device numbers they stand for.</summary>
/// <remarks>
/// NOTE: encoding from Xen docs/misc/vbd-interface.txt: xvd disk d &lt; 16 is <c>(202 &lt;&lt; 8) | (d &lt;&lt; 4)</c>;
/// xvd disk d ≥ 16 is the extended form <c>(1 &lt;&lt; 28) | (d &lt;&lt; 8)</c>; sd disk d &lt; 16 is <c>(8 &lt;&lt; 8) | (d &lt;&lt; 4)</c>.
/// Disk letters count a..z, aa..zz, ... (xvdaa is disk 26). A bare decimal number is taken as the device number.
/// Whole disks only: partition suffixes are refused. Pure functions: thread-safe.
/// </remarks>
public static class XenVirtualDevice
{
    /// <summary>The largest disk index the extended xvd form carries (20 bits).</summary>
    public const int MaxExtendedDisk = (1 << 20) - 1;

    /// <summary>Parses <paramref name="name"/>; on failure returns false with a one-line reason in <paramref name="error"/>.</summary>
    public static bool TryParse(string? name, out int deviceNumber, out string? error)
    {
        deviceNumber = 0;
        error = null;
        if (string.IsNullOrEmpty(name)) { error = "the virtual device name is empty (use e.g. xvdb)"; return false; }
        if (char.IsAsciiDigit(name[0]))
        {
            if (!int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out deviceNumber) || deviceNumber <= 0)
            {
                error = $"virtual device '{name}' is not a positive device number";
                return false;
            }
            return true;
        }
        string prefix = name.StartsWith("xvd", StringComparison.Ordinal) ? "xvd" : name.StartsWith("sd", StringComparison.Ordinal) ? "sd" : "";
        if (prefix.Length == 0) { error = $"virtual device '{name}' is not an xvdX or sdX name or a device number"; return false; }
        int i = prefix.Length;
        long disk = 0;
        int letters = 0;
        while (i < name.Length && name[i] is >= 'a' and <= 'z')
        {
            disk = disk * 26 + (name[i] - 'a' + 1);
            letters++;
            i++;
            if (disk > MaxExtendedDisk + 1) { error = $"virtual device '{name}': disk index too large"; return false; }
        }
        if (letters == 0) { error = $"virtual device '{name}' names no disk letter"; return false; }
        if (i != name.Length)
        {
            error = char.IsAsciiDigit(name[i])
                ? $"virtual device '{name}' names a partition; attach a whole disk (e.g. {name[..i]})"
                : $"virtual device '{name}' has unexpected characters after the disk letters";
            return false;
        }
        disk -= 1;
        if (prefix == "sd")
        {
            if (disk >= 16) { error = $"virtual device '{name}': sd disks stop at sdp; use xvd names"; return false; }
            deviceNumber = (8 << 8) | ((int)disk << 4);
            return true;
        }
        deviceNumber = disk < 16 ? (202 << 8) | ((int)disk << 4) : (1 << 28) | ((int)disk << 8);
        return true;
    }
}
