using System.Reflection;
using System.Runtime.InteropServices;
using BlkTap.Linux.Interop;
using BlkTap.Xen.Interop;
using NUnit.Framework;

namespace BlkTap.Xen.Tests.Interop;

/// <summary>
/// Proves every [LibraryImport] binding in BlkTap.Linux (libc) and BlkTap.Xen (the Xen libraries): its entry point exists in the Debian library it names, its
/// C prototype (checked by gcc with __builtin_types_compatible_p against the installed headers) is the one in the
/// table below, and each C# parameter has the size and kind that prototype needs.
/// </summary>
[TestFixture]
public class NativeSignatureTests
{
    /// <summary>C function → its type as a function-pointer type, exactly as the headers declare it.</summary>
    private static readonly Dictionary<string, string> Prototypes = new()
    {
        // glibc
        ["open"] = "int (*)(const char *, int, ...)",
        ["close"] = "int (*)(int)",
        ["ioctl"] = "int (*)(int, unsigned long, ...)",
        ["mmap"] = "void *(*)(void *, size_t, int, int, int, off_t)",
        ["munmap"] = "int (*)(void *, size_t)",
        ["madvise"] = "int (*)(void *, size_t, int)",
        ["poll"] = "int (*)(struct pollfd *, nfds_t, int)",
        ["read"] = "ssize_t (*)(int, void *, size_t)",
        ["writev"] = "ssize_t (*)(int, const struct iovec *, int)",
        ["write"] = "ssize_t (*)(int, const void *, size_t)",
        ["free"] = "void (*)(void *)",
        ["pipe2"] = "int (*)(int *, int)",
        ["fallocate"] = "int (*)(int, int, off_t, off_t)",
        ["ftruncate"] = "int (*)(int, off_t)",
        ["memfd_create"] = "int (*)(const char *, unsigned int)",
        ["fcntl"] = "int (*)(int, int, ...)",
        ["sendmsg"] = "ssize_t (*)(int, const struct msghdr *, int)",
        ["fsync"] = "int (*)(int)",
        ["pread"] = "ssize_t (*)(int, void *, size_t, off_t)",
        ["pwrite"] = "ssize_t (*)(int, const void *, size_t, off_t)",
        ["preadv2"] = "ssize_t (*)(int, const struct iovec *, int, off_t, int)",
        ["pwritev2"] = "ssize_t (*)(int, const struct iovec *, int, off_t, int)",
        ["sendfile64"] = "ssize_t (*)(int, int, off64_t *, size_t)",
        ["fstatfs"] = "int (*)(int, struct statfs *)",
        ["epoll_create1"] = "int (*)(int)",
        ["epoll_ctl"] = "int (*)(int, int, int, struct epoll_event *)",
        ["epoll_wait"] = "int (*)(int, struct epoll_event *, int, int)",
        ["eventfd"] = "int (*)(unsigned int, int)",
        ["syscall"] = "long (*)(long, ...)",
        ["lseek"] = "off_t (*)(int, off_t, int)",
        // xenstore.h
        ["xs_open"] = "struct xs_handle *(*)(unsigned long)",
        ["xs_close"] = "void (*)(struct xs_handle *)",
        ["xs_read"] = "void *(*)(struct xs_handle *, xs_transaction_t, const char *, unsigned int *)",
        ["xs_write"] = "bool (*)(struct xs_handle *, xs_transaction_t, const char *, const void *, unsigned int)",
        ["xs_rm"] = "bool (*)(struct xs_handle *, xs_transaction_t, const char *)",
        ["xs_directory"] = "char **(*)(struct xs_handle *, xs_transaction_t, const char *, unsigned int *)",
        ["xs_watch"] = "bool (*)(struct xs_handle *, const char *, const char *)",
        ["xs_unwatch"] = "bool (*)(struct xs_handle *, const char *, const char *)",
        ["xs_read_watch"] = "char **(*)(struct xs_handle *, unsigned int *)",
        ["xs_check_watch"] = "char **(*)(struct xs_handle *)",
        ["xs_fileno"] = "int (*)(struct xs_handle *)",
        ["xs_transaction_start"] = "xs_transaction_t (*)(struct xs_handle *)",
        ["xs_transaction_end"] = "bool (*)(struct xs_handle *, xs_transaction_t, bool)",
        ["xs_set_permissions"] = "bool (*)(struct xs_handle *, xs_transaction_t, const char *, struct xs_permissions *, unsigned int)",
        // xengnttab.h
        ["xengnttab_open"] = "xengnttab_handle *(*)(struct xentoollog_logger *, unsigned)",
        ["xengnttab_close"] = "int (*)(xengnttab_handle *)",
        ["xengnttab_map_domain_grant_refs"] = "void *(*)(xengnttab_handle *, uint32_t, uint32_t, uint32_t *, int)",
        ["xengnttab_unmap"] = "int (*)(xengnttab_handle *, void *, uint32_t)",
        ["xengnttab_grant_copy"] = "int (*)(xengnttab_handle *, uint32_t, xengnttab_grant_copy_segment_t *)",
        // xenevtchn.h
        ["xenevtchn_open"] = "xenevtchn_handle *(*)(struct xentoollog_logger *, unsigned int)",
        ["xenevtchn_close"] = "int (*)(xenevtchn_handle *)",
        ["xenevtchn_fd"] = "int (*)(xenevtchn_handle *)",
        ["xenevtchn_bind_interdomain"] = "xenevtchn_port_or_error_t (*)(xenevtchn_handle *, uint32_t, evtchn_port_t)",
        ["xenevtchn_bind_unbound_port"] = "xenevtchn_port_or_error_t (*)(xenevtchn_handle *, uint32_t)",
        ["xenevtchn_unbind"] = "int (*)(xenevtchn_handle *, evtchn_port_t)",
        ["xenevtchn_notify"] = "int (*)(xenevtchn_handle *, evtchn_port_t)",
        ["xenevtchn_pending"] = "xenevtchn_port_or_error_t (*)(xenevtchn_handle *)",
        ["xenevtchn_unmask"] = "int (*)(xenevtchn_handle *, evtchn_port_t)",
    };

    public sealed record Binding(string EntryPoint, string Library, MethodInfo Method)
    {
        public override string ToString() => EntryPoint;
    }

    public static IEnumerable<Binding> Bindings() =>
        new[] { typeof(Libc).Assembly, typeof(XenStoreLib).Assembly }.SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (m, a: m.GetCustomAttribute<LibraryImportAttribute>()))
            .Where(x => x.a != null)
            .Select(x => new Binding(x.a!.EntryPoint ?? x.m.Name, x.a.LibraryName, x.m))
            .OrderBy(b => b.EntryPoint);

    [Test]
    public void Bindings_EveryLibraryImport_HasAPrototypeInTheTable()
    {
        var entryPoints = Bindings().Select(b => b.EntryPoint).ToList();
        Assert.That(entryPoints, Is.Not.Empty, "no [LibraryImport] found by reflection");
        Assert.That(entryPoints.Distinct(), Is.EquivalentTo(Prototypes.Keys)); // one C function may have two bindings (read: SafeHandle and raw fd)
    }

    [Test]
    public void Prototypes_Table_MatchesInstalledHeaders()
    {
        // gcc rejects the program at compile time (static assertion) if any header prototype differs from the table.
        var body = string.Concat(Prototypes.Select(p =>
            $"    _Static_assert(__builtin_types_compatible_p(__typeof__(&{p.Key}), {p.Value}), \"{p.Key} prototype\");\n"
            + CProbe.PrintInt("sig:" + p.Key, "1")));
        var values = CProbe.Run("#define _GNU_SOURCE\n" + CProbe.Program(body), "xen_signature_probe");
        Assert.That(values.Keys.Count(k => k.StartsWith("sig:", StringComparison.Ordinal)), Is.EqualTo(Prototypes.Count));
    }

    [TestCaseSource(nameof(Bindings))]
    public void Binding_ParametersAndReturn_MatchCPrototype(Binding binding)
    {
        Assert.That(Prototypes.TryGetValue(binding.EntryPoint, out var prototype), $"{binding.EntryPoint} is not in the table");
        int star = prototype!.IndexOf("(*)", StringComparison.Ordinal);
        string cReturn = prototype[..star].Trim();
        string list = prototype[(star + 3)..].Trim().TrimStart('(').TrimEnd(')');
        var cParams = list.Split(',', StringSplitOptions.TrimEntries).ToList();
        var csParams = binding.Method.GetParameters();
        if (cParams[^1] == "...")
        {
            // NOTE: variadic open/fcntl/ioctl are bound with their one optional argument as a fixed parameter
            // (open's mode and fcntl's F_ADD_SEALS seals are ints, ioctl's argument a pointer).
            // syscall(2) is bound with six long arguments, the most a Linux system call takes (io_uring_enter's).
            if (binding.EntryPoint == "syscall") { cParams.RemoveAt(cParams.Count - 1); cParams.AddRange(Enumerable.Repeat("long", 6)); }
            else cParams[^1] = binding.EntryPoint is "open" or "fcntl" ? "int" : "void *";
        }
        Assert.Multiple(() =>
        {
            Assert.That(csParams, Has.Length.EqualTo(cParams.Count), $"{binding.EntryPoint} parameter count");
            for (int i = 0; i < Math.Min(csParams.Length, cParams.Count); i++)
                Assert.That(Matches(cParams[i], csParams[i].ParameterType), Is.True,
                    $"{binding.EntryPoint} parameter {i}: C {cParams[i]} vs C# {csParams[i].ParameterType}");
            Assert.That(Matches(cReturn, binding.Method.ReturnType), Is.True,
                $"{binding.EntryPoint} return: C {cReturn} vs C# {binding.Method.ReturnType}");
            Assert.That(binding.Method.GetCustomAttribute<LibraryImportAttribute>()!.SetLastError || cReturn == "void",
                Is.True, $"{binding.EntryPoint} must use SetLastError = true");
        });
    }

    [TestCaseSource(nameof(Bindings))]
    public void Binding_EntryPoint_ExportedByDebianLibrary(Binding binding)
    {
        if (!NativeLibrary.TryLoad(binding.Library, binding.Method.DeclaringType!.Assembly, null, out var handle))
            Assert.Fail($"{binding.Library} does not load (apt-get install libxenstore4 libxengnttab1 libxenevtchn1)");
        try
        {
            Assert.That(NativeLibrary.TryGetExport(handle, binding.EntryPoint, out var address), Is.True,
                $"{binding.Library} does not export {binding.EntryPoint}");
            Assert.That(address, Is.Not.EqualTo(nint.Zero));
        }
        finally { NativeLibrary.Free(handle); }
    }

    private static bool Matches(string c, Type cs)
    {
        c = c.Replace("const ", "", StringComparison.Ordinal).Trim();
        if (c.EndsWith('*'))
        {
            string pointee = c[..^1].Trim();
            if (cs.IsByRef) return pointee is "unsigned int" or "uint32_t" && cs.GetElementType() == typeof(uint);
            if (cs == typeof(string)) return pointee == "char";
            return cs.IsPointer || cs == typeof(nint) || typeof(SafeHandle).IsAssignableFrom(cs);
        }
        return c switch
        {
            "int" or "xenevtchn_port_or_error_t" => cs == typeof(int) || cs == typeof(SafeFdHandle) || cs == typeof(Microsoft.Win32.SafeHandles.SafeFileHandle),
            "unsigned int" or "unsigned" or "uint32_t" or "xs_transaction_t" or "evtchn_port_t" => cs == typeof(uint),
            "unsigned long" or "size_t" or "nfds_t" => cs == typeof(nuint),
            "ssize_t" => cs == typeof(nint),
            "off_t" or "long" => cs == typeof(long),
            "bool" => cs == typeof(bool),
            "void" => cs == typeof(void),
            _ => false,
        };
    }
}
