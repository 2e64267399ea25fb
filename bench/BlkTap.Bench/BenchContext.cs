namespace BlkTap.Bench;

/// <summary>
/// What every benchmark group gets: the run mode, a progress sink (stderr, only when it is a
/// terminal), and a scratch directory under /dev/shm that is removed at the end.
/// </summary>
/// <remarks>Threading: one thread (the bench command's).</remarks>
public sealed class BenchContext : IDisposable
{
    private readonly Action<string> _progress;

    /// <summary>Creates the scratch directory.</summary>
    /// <param name="quick">Tiny runs (<see cref="Quick"/>).</param>
    /// <param name="progress">Where "what is running now" goes.</param>
    /// <param name="blktap">
    /// Runs a <c>blktap</c> command line in this process and returns its exit code (the CLI passes its own entry
    /// point): the replay group measures the <c>replay</c> verb itself.
    /// </param>
    public BenchContext(bool quick, Action<string> progress, Func<string[], TextWriter, TextWriter, int> blktap)
    {
        Quick = quick;
        _progress = progress;
        Blktap = blktap;
        // The work tree may be on a slow virtual disk (the CI machines' is):
        // images live in /dev/shm (memory) so the figures measure our software, not the disk.
        var root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        ScratchDirectory = Path.Combine(root, $"blktap-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(ScratchDirectory);
    }

    /// <summary>Runs a <c>blktap</c> command line in this process (arguments, stdout, stderr), returning its exit code.</summary>
    public Func<string[], TextWriter, TextWriter, int> Blktap { get; }

    /// <summary>Tiny runs (a smoke test of every line; the figures mean little).</summary>
    public bool Quick { get; }

    /// <summary>Where images and sockets go (under /dev/shm when it exists).</summary>
    public string ScratchDirectory { get; }

    /// <summary>The runtime's null-terminator rate (1 frontend, req/s) once measured: the replay line's baseline.</summary>
    public double NullTerminatorRate { get; set; }

    /// <summary>The ring harness's mem-terminator 4 KiB read rate (req/s) once measured: the emulator lines' baseline.</summary>
    public double MemTerminatorReadRate { get; set; }

    /// <summary>Reports what is running now.</summary>
    public void Progress(string message) => _progress(message);

    /// <summary>A path in the scratch directory.</summary>
    public string Scratch(string name) => Path.Combine(ScratchDirectory, name);

    /// <summary>Creates (or overwrites) a file of <paramref name="bytes"/> filled with pseudo-random data, so reads touch real pages.</summary>
    public string CreateImage(string name, long bytes)
    {
        var path = Scratch(name);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite, 1 << 20);
        var buffer = new byte[1 << 20];
        new Random(42).NextBytes(buffer);
        for (long done = 0; done < bytes; done += buffer.Length)
            fs.Write(buffer, 0, (int)Math.Min(buffer.Length, bytes - done));
        return path;
    }

    /// <summary>Removes the scratch directory.</summary>
    public void Dispose()
    {
        try { Directory.Delete(ScratchDirectory, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
