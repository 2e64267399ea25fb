using BlkTap.Chains;
using BlkTap.Nbd;

namespace BlkTap.Testing.Generators;

/// <summary>
/// The scratch directory of one <see cref="ChainCase"/> with its <see cref="ChainCase.Resources"/> made (image files,
/// key files, in-process NBD servers), and the case's specs with <see cref="ChainCase.DirToken"/> replaced by the
/// directory. Dispose it after the chain using it is disposed: it stops the servers and deletes the directory.
/// </summary>
/// <remarks>
/// The NBD servers are the project's own <see cref="NbdServer"/> over a <see cref="MemoryNbdExportBackend"/>, each on
/// its own loop thread; their bytes are readable through <see cref="NbdExport"/>. Threading: create, read and dispose
/// from one test thread.
/// </remarks>
public sealed class ChainResources : IDisposable
{
    private static readonly TimeSpan StopDeadline = TimeSpan.FromSeconds(60);
    private readonly Dictionary<string, (NbdServer Server, MemoryNbdExportBackend Backend)> _servers = new(StringComparer.Ordinal);
    private EmulatedLowerVbd? _lowerVbd;

    private ChainResources(ChainCase chain)
    {
        Case = chain;
        Directory = Path.Combine(Path.GetTempPath(), "blktap-chain-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(Directory);
        Specs = [.. chain.Specs.Select(Resolve)];
    }

    /// <summary>The case.</summary>
    public ChainCase Case { get; }

    /// <summary>The scratch directory.</summary>
    public string Directory { get; }

    /// <summary>The case's specs with the scratch directory filled in.</summary>
    public IReadOnlyList<string> Specs { get; }

    /// <summary>Makes the scratch directory and every resource of <paramref name="chain"/>.</summary>
    public static ChainResources Create(ChainCase chain)
    {
        var r = new ChainResources(chain);
        try
        {
            foreach (var resource in chain.Resources) r.Make(resource);
            return r;
        }
        catch
        {
            r.Dispose();
            throw;
        }
    }

    /// <summary>Replaces <see cref="ChainCase.DirToken"/> in <paramref name="text"/> by the scratch directory.</summary>
    public string Resolve(string text) => text.Replace(ChainCase.DirToken, Directory, StringComparison.Ordinal);

    /// <summary>The full path of <paramref name="name"/> in the scratch directory.</summary>
    public string PathOf(string name) => Path.Combine(Directory, name);

    /// <summary>
    /// Builds the chain from <see cref="Specs"/> (with the example taps unless <paramref name="registry"/> is given). When
    /// the case has a lower vbd and <paramref name="context"/> no frontend platform, the vbd's emulator provides it.
    /// </summary>
    public TapChain Build(TapContext context, TapRegistry? registry = null) =>
        (registry ?? Examples.ExampleTaps.CreateRegistry()).Build([.. Specs.Select(TapSpec.Parse)], Context(context));

    /// <summary>
    /// <paramref name="context"/> as the case's chain needs it: with the lower vbd's frontend platform when the case has a
    /// lower vbd and the context none (the <c>vbd</c> tap connects through it).
    /// </summary>
    public TapContext Context(TapContext context) =>
        _lowerVbd == null || context.Frontends != null
            ? context
            : context with { Frontends = _lowerVbd.Platform };

    /// <summary>The live bytes of the NBD export on socket <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The case has no such export.</exception>
    public byte[] NbdExport(string name) => _servers[name].Backend.Data;

    /// <summary>
    /// The bytes a storage tap of the chain (spec <paramref name="specIndex"/>) keeps its disk in, read now: the image file
    /// of img and aio, the export of nbd, the overlay file of cow, the lower vbd's disk of vbd. Null for a tap whose storage is not observable from
    /// outside (mem) or that stores nothing.
    /// </summary>
    public byte[]? StorageOf(int specIndex)
    {
        var spec = TapSpec.Parse(Specs[specIndex]);
        switch (spec.Name)
        {
            case "img":
            case "aio":
                return spec.Get("path") is { } image ? ReadShared(image) : null;
            case "cow":
                return spec.Get("overlay") is { } overlay && File.Exists(overlay) ? ReadShared(overlay) : null;
            case "nbd":
                return NbdUri.TryParse(spec.Get("uri") ?? "", out var uri, out _) && uri!.SocketPath is { } socket
                    && _servers.TryGetValue(Path.GetFileName(socket), out var s) ? (byte[])s.Backend.Data.Clone() : null;
            case "vbd":
                return _lowerVbd?.Snapshot();
            default:
                return null;
        }
    }

    private static byte[] ReadShared(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[f.Length];
        f.ReadExactly(bytes);
        return bytes;
    }

    private void Make(ChainResource resource)
    {
        var path = PathOf(resource.Name);
        switch (resource)
        {
            case ImageFileResource image:
                using (var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
                {
                    if (image.ContentSeed is { } seed)
                    {
                        var bytes = new byte[image.Bytes];
                        new Random(seed).NextBytes(bytes);
                        f.Write(bytes);
                    }
                    else f.SetLength(image.Bytes); // sparse: reads as zeros
                }
                break;
            case Qcow2ImageResource qcow2:
                BlkTap.Examples.Qcow2.Qcow2Creator.Create(path, qcow2.Bytes, qcow2.ClusterSize, qcow2.Backing, qcow2.Backing != null ? "raw" : null);
                break;
            case KeyFileResource key:
                var k = new byte[key.Bytes];
                new Random(key.Seed).NextBytes(k);
                if (k.AsSpan(0, key.Bytes / 2).SequenceEqual(k.AsSpan(key.Bytes / 2))) k[0] ^= 1; // IEEE 1619: the halves must differ
                File.WriteAllBytes(path, k);
                break;
            case NbdExportResource export:
                var backend = new MemoryNbdExportBackend(export.Bytes, export.ReadOnly);
                var server = new NbdServer(backend);
                server.ListenUnix(path);
                _servers.Add(resource.Name, (server, backend));
                break;
            case LowerVbdResource vbd:
                if (_lowerVbd != null) throw new ArgumentException($"{Case} has two lower vbds; a case has at most one", nameof(resource));
                if (!XenVirtualDevice.TryParse(vbd.Name, out int number, out var error)) throw new ArgumentException($"lower vbd {vbd.Name}: {error}", nameof(resource));
                _lowerVbd = new EmulatedLowerVbd(number, vbd.Bytes, vbd.ReadOnly);
                break;
            default:
                throw new ArgumentException($"unknown chain resource {resource}", nameof(resource));
        }
    }

    /// <summary>Stops the NBD servers and the lower vbd and deletes the scratch directory.</summary>
    public void Dispose()
    {
        _lowerVbd?.Dispose();
        _lowerVbd = null;
        foreach (var (server, _) in _servers.Values)
            if (!server.DisposeAsync().AsTask().Wait(StopDeadline)) throw new TimeoutException($"an NBD server of {Case} did not stop");
        _servers.Clear();
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { }
    }
}
