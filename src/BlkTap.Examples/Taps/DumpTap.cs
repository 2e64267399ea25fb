using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlkTap.Chains;
using BlkTap.Trace;

namespace BlkTap.Examples;

/// <summary>
/// <c>dump</c>: prints every request and response in flight without changing the stream (blkdump of the
/// 2005 Xen blktap, Xen's <c>tools/blktap/README</c>).
/// </summary>
public sealed class DumpTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "dump";
    /// <inheritdoc/>
    public string Description => "print every request and response in flight (the 2005 blktap's blkdump)";
    /// <inheritdoc/>
    public bool IsTerminator => false;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("file", "write to this file instead of standard output"),
        new("quiet", "count only, print nothing per request (default false)"),
        new("trace", "also record every request into this binary trace file (docs/trace-format.md; replay it with 'blktap replay')"),
        new("hash", "with trace: record the XxHash64 of each write's data and each read's returned data (default false)"),
        new("trace-full", "with trace: when the disk falls behind, 'block' the tap (default, no record lost) or 'drop' records (counted in the trailer)"),
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
        bool hash = spec.GetBool("hash", false);
        var full = spec.Get("trace-full") switch
        {
            null or "block" => TraceFullMode.Block,
            "drop" => TraceFullMode.DropNewest,
            var v => throw new ChainSpecException($"tap 'dump': option 'trace-full={v}' must be 'block' or 'drop'"),
        };
        var tracePath = spec.Get("trace");
        if (tracePath == null && (spec.Options.ContainsKey("hash") || spec.Options.ContainsKey("trace-full")))
            throw new ChainSpecException("tap 'dump': options 'hash' and 'trace-full' need 'trace=FILE'");
        TraceCapture? capture = null;
        if (tracePath != null)
        {
            if (tracePath.Length == 0) throw new ChainSpecException("tap 'dump': option 'trace=' needs a file name");
            try
            {
                capture = new TraceCapture(TraceWriter.Create(tracePath, new TraceWriterOptions
                {
                    Description = $"blktap dump tap capture: {spec.Text}",
                    FullMode = full,
                }), hash);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                if (own) output.Dispose();
                throw new ChainSpecException($"tap 'dump': cannot write trace '{tracePath}': {ex.Message}");
            }
        }
        return new DumpTap(output, own, spec.GetBool("quiet", false), capture);
    }
}

/// <summary>
/// The <c>dump</c> tap. Loop thread only. Lines: <c>&gt; session id op sector+count segs</c> and
/// <c>&lt; session id op status latency</c>. With a <see cref="TraceCapture"/> it also records every
/// request into a binary trace (only an in-memory append on the loop; the file is written by the
/// trace writer's own thread and completed when the tap is disposed).
/// </summary>
public sealed class DumpTap : TapBase, IRequestHook, IResponseHook, IControlHook
{
    private readonly TextWriter _out;
    private readonly bool _own;
    private readonly bool _quiet;
    private readonly TraceCapture? _capture;

    /// <summary>Creates the tap.</summary>
    public DumpTap(TextWriter output, bool ownsOutput, bool quiet) : this(output, ownsOutput, quiet, null) { }

    /// <summary>Creates the tap; it owns <paramref name="capture"/> and completes it on <see cref="Dispose"/>.</summary>
    public DumpTap(TextWriter output, bool ownsOutput, bool quiet, TraceCapture? capture) : base("dump")
    {
        _out = output;
        _own = ownsOutput;
        _quiet = quiet;
        _capture = capture;
    }

    /// <summary>The trace capture, when the tap records one.</summary>
    public TraceCapture? Capture => _capture;

    /// <summary>Requests seen.</summary>
    public long Requests { get; private set; }
    /// <summary>Responses seen.</summary>
    public long Responses { get; private set; }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest r)
    {
        Requests++;
        r.SetTag(this, 1);
        _capture?.OnRequest(r);
        if (!_quiet)
            _out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"> {r.Session.Name} id={r.Id} {r.Operation} sector={r.Sector}+{r.SectorCount} segs={r.SegmentCount}"));
        return HookResult.Pass;
    }

    /// <inheritdoc/>
    public void OnResponse(TapRequest r)
    {
        Responses++;
        _capture?.OnResponse(r);
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
        try { _capture?.Complete(); }
        finally { DisposeOutput(); }
    }

    private void DisposeOutput()
    {
        _out.Flush();
        if (_own) _out.Dispose();
        base.Dispose();
    }
}
