using BlkTap.Storage;

namespace BlkTap;

public sealed partial class FileBlockDevice
{
    // The mapped path (`mapped`, img's option `map`): a file that can be mapped (IMappableStorageFile: a file in memory)
    // is mapped at the first read or write the loop takes, and from then on the file itself copies reads and writes of
    // pages known to hold data through the mapping instead of making a system call; the batch, its order and its
    // helpers are unchanged. Exclusive with the submission queue (io_uring reads and writes would not mark the pages).

    private readonly bool _useMap;

    /// <summary>Any thread: true once the file is mapped (<see cref="IMappableStorageFile"/>; asked for with <c>mapped</c>).</summary>
    public bool Mapped => _file is IMappableStorageFile { Mapped: true };

    /// <summary>Any thread: how many reads and writes the file has copied through its mapping (0 unmapped).</summary>
    public long MappedOperations => _file is IMappableStorageFile m ? m.MappedOperations : 0;

    /// <summary>Loop thread, at the first read or write: maps the file when asked to; a refusal is said once.</summary>
    private void MapFile(TapRequest request)
    {
        if (!_useMap || _file is not IMappableStorageFile mappable) return; // the power-cut simulation, a test's file: silently
        bool mapped;
        string? why;
        try { mapped = mappable.TryMap(out why); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { mapped = false; why = ex.Message; }
        if (!mapped && why != null) // null reason: the file offers none (not in memory), nothing to say
            request.Runtime.Report(TapDiagnosticLevel.Information, request.Session, $"{Path}: not mapped ({why}); reads and writes one system call each");
    }
}
