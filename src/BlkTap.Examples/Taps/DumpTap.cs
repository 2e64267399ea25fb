using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace BlkTap.Examples;

/// <summary><c>dump</c>: prints every request and response in flight without changing the stream (the seed's blkdump).</summary>
public sealed class DumpTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "dump";
    /// <inheritdoc/>
    public string Description => "print every request and response in flight (the seed's blkdump)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("file", "write to this file instead of standard output"),
        new("quiet", "count only, print nothing per request (default false)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var file = spec.Get("file");
        TextWriter output = context.Output;
        bool own = false;
        if (file != null)
        {
            try { output = new StreamWriter(file, append: false, Encoding.UTF8) { AutoFlush = false }; own = true; }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or DirectoryNotFoundException)
            { throw new ChainSpecException($"tap 'dump': cannot write '{file}': {ex.Message}"); }
        }
        return new DumpTap(output, own, spec.GetBool("quiet", false));
    }
}

/// <summary>The <c>dump</c> tap. Loop thread only. Lines: <c>&gt; session id op sector+count segs</c> and <c>&lt; session id op status latency</c>.</summary>
public sealed class DumpTap : TapBase, IRequestHook, IResponseHook, IControlHook
{
    private readonly TextWriter _out;
    private readonly bool _own;
    private readonly bool _quiet;

    /// <summary>Creates the tap.</summary>
    public DumpTap(TextWriter output, bool ownsOutput, bool quiet) : base("dump")
    {
        _out = output;
        _own = ownsOutput;
        _quiet = quiet;
    }

    /// <summary>Requests seen.</summary>
    public long Requests { get; private set; }
    /// <summary>Responses seen.</summary>
    public long Responses { get; private set; }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest r)
    {
        Requests++;
        r.SetTag(this, 1);
        if (!_quiet)
            _out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"> {r.Session.Name} id={r.Id} {r.Operation} sector={r.Sector}+{r.SectorCount} segs={r.SegmentCount}"));
        return HookResult.Pass;
    }

    /// <inheritdoc/>
    public void OnResponse(TapRequest r)
    {
        Responses++;
        if (_quiet) return;
        double us = Stopwatch.GetElapsedTime(r.SubmitTimestamp).TotalMicroseconds;
        string via = r.TryGetTag(this, out _) ? "" : " (answered before dump)";
        _out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"< {r.Session.Name} id={r.Id} {r.Operation} status={r.Status} latency={us:F1}us{via}"));
    }

    /// <inheritdoc/>
    public void OnControl(ControlEvent e)
    {
        if (!_quiet) _out.WriteLine($"* {e.Session.Name} {e.Kind}{(e.Session.ImageId != null ? " image=" + e.Session.ImageId : "")}{(e.Reason != null ? " reason=" + e.Reason : "")}");
        if (e.Kind == ControlEventKind.Disconnect) _out.Flush();
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _out.Flush();
        if (_own) _out.Dispose();
        base.Dispose();
    }
}
