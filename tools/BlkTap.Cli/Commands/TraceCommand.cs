using System.CommandLine;
using System.Globalization;
using BlkTap.Cli.Output;
using BlkTap.Examples;
using BlkTap.Trace;

namespace BlkTap.Cli.Commands;

/// <summary>
/// <c>blktap trace export TRACE --output-format fio|text|native -o OUT [--target PATH] [--json]</c> and
/// <c>blktap trace info TRACE [--json]</c>: convert any readable trace, and describe one. Both take
/// <c>--input-format</c>; <c>--format</c> is kept as an alias of export's <c>--output-format</c>.
/// </summary>
/// <remarks>
/// The input is read in full before the output is written (export writes to a temporary file next to
/// OUT and renames it), so a bad input leaves no half-written output: one stderr line naming the
/// file and the byte offset or line, exit 2. Without --target, fio export gives each session its own
/// target file <c>sessionN.img</c> (relative to fio's working directory).
/// </remarks>
internal static class TraceCommand
{
    public static Command Create(CliIo io)
    {
        var cmd = new Command("trace", "convert and describe request traces");
        cmd.Subcommands.Add(Export(io));
        cmd.Subcommands.Add(Info(io));
        return cmd;
    }

    /// <summary>The input format option of every verb that reads a trace (<c>replay</c> keeps <c>--format</c> as an alias).</summary>
    internal static Option<string> InputFormat(params string[] aliases) => new("--input-format", aliases) { Description = "the trace's format: auto (default), native, text, blkparse, msr or fio", DefaultValueFactory = _ => "auto" };

    private static Command Export(CliIo io)
    {
        var trace = new Argument<string>("TRACE") { Description = "the trace to convert (any readable format)" };
        var format = new Option<string>("--output-format", "--format") { Description = "the format to write: fio (iolog v3), text, or native (--format is an alias)", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "the file to write", Required = true };
        var target = new Option<string?>("--target") { Description = "fio: the file or device every request goes to (default: sessionN.img per session)" };
        var skipTrim = new Option<bool>("--no-trim") { Description = "fio: leave discards out (fio 3.33 rejects trim entries with 'bad ddir: 2')" };
        var input = InputFormat();
        var json = CliJson.Option("output, output_format, records, input, input_format");
        var cmd = new Command("export", "convert a trace to a fio iolog v3, the text form, or the native format");
        cmd.Arguments.Add(trace);
        foreach (var o in new Option[] { format, output, target, skipTrim, input, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var path = parse.GetValue(trace)!;
            var outPath = parse.GetValue(output)!;
            var fmt = parse.GetValue(format)!;
            var tgt = parse.GetValue(target);
            if (fmt is not ("fio" or "text" or "native")) return io.BadInput($"--output-format '{fmt}': use fio, text or native");
            if (fmt != "fio" && tgt != null) return io.BadInput("--target only applies to --output-format fio");
            if (tgt != null && (tgt.Length == 0 || tgt.Any(char.IsWhiteSpace) || tgt.Length > 256))
                return io.BadInput($"--target '{tgt}': fio iolog file names must be 1 to 256 characters without blanks");
            var inFormat = ReplayCommand.ParseFormat(parse.GetValue(input)!);
            if (!File.Exists(path)) return io.BadInput($"{path}: file not found");
            if (Directory.Exists(outPath)) return io.BadInput($"{outPath}: is a directory");
            TraceFormat detected;
            try
            {
                detected = inFormat ?? TraceFormats.Detect(path);
                TraceSummary.Scan(TraceFormats.Read(path, detected)); // validate everything first
            }
            catch (TraceFormatException ex) { return io.BadInput(ex.Message + " (nothing was written)"); }
            var temp = outPath + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            long n;
            try
            {
                var records = TraceFormats.Read(path, detected);
                if (fmt == "native")
                {
                    using var w = TraceWriter.Create(temp, new TraceWriterOptions { Description = $"blktap trace export of {Path.GetFileName(path)} ({detected.ToString().ToLowerInvariant()})" });
                    n = 0;
                    foreach (var r in records) { w.Append(r); n++; }
                    w.Complete();
                }
                else
                {
                    using var w = new StreamWriter(temp, append: false, new System.Text.UTF8Encoding(false));
                    n = fmt == "text"
                        ? TraceText.Write(records, w)
                        : tgt != null ? FioIologExporter.Export(records, w, tgt, parse.GetValue(skipTrim) ? FioDiscardMode.Skip : FioDiscardMode.Trim)
                        : FioIologExporter.Export(records, w, s => $"session{s}.img", parse.GetValue(skipTrim) ? FioDiscardMode.Skip : FioDiscardMode.Trim);
                }
                File.Move(temp, outPath, overwrite: true);
            }
            catch (Exception ex) when (ex is TraceFormatException or IOException or UnauthorizedAccessException)
            {
                try { File.Delete(temp); } catch (IOException) { }
                return io.BadInput(ex is TraceFormatException ? ex.Message + " (nothing was written)" : $"{outPath}: {ex.Message}");
            }
            if (parse.GetValue(json))
                CliJson.Write(io.Out, new { output = outPath, output_format = fmt, records = n, input = path, input_format = detected.ToString().ToLowerInvariant() });
            else io.Out.WriteLine($"{outPath}: {n} {(fmt == "fio" ? "I/O lines" : "records")} ({fmt}) from {path} ({detected.ToString().ToLowerInvariant()})");
            return CliApp.Ok;
        });
        return cmd;
    }

    private static Command Info(CliIo io)
    {
        var trace = new Argument<string>("TRACE") { Description = "the trace to describe (any readable format)" };
        var input = InputFormat();
        var json = CliJson.Option("file, format, records, sessions, operations, time span, ...");
        var cmd = new Command("info", "print a trace's format, record count, sessions, operation mix and time span");
        cmd.Arguments.Add(trace);
        cmd.Options.Add(input);
        cmd.Options.Add(json);
        cmd.SetAction(parse =>
        {
            var path = parse.GetValue(trace)!;
            var inFormat = ReplayCommand.ParseFormat(parse.GetValue(input)!);
            if (!File.Exists(path)) return io.BadInput($"{path}: file not found");
            TraceFormat detected;
            TraceSummary s;
            TraceHeader? header = null;
            ulong? dropped = null;
            try
            {
                detected = inFormat ?? TraceFormats.Detect(path);
                if (detected == TraceFormat.Native)
                {
                    using var reader = TraceReader.Open(path);
                    header = reader.Header;
                    s = TraceSummary.Scan(reader.ReadAll());
                    dropped = reader.DroppedRecords;
                }
                else s = TraceSummary.Scan(TraceFormats.Read(path, detected));
            }
            catch (TraceFormatException ex) { return io.BadInput(ex.Message); }
            if (parse.GetValue(json))
            {
                CliJson.Write(io.Out, InfoJson(path, detected, s, header, dropped));
                return CliApp.Ok;
            }
            var ci = CultureInfo.InvariantCulture;
            var w = io.Out;
            w.WriteLine($"file:      {path}");
            w.WriteLine($"format:    {detected.ToString().ToLowerInvariant()}");
            if (header != null)
            {
                w.WriteLine(string.Create(ci, $"version:   {header.Version}, created {header.CreatedUtc:u}"));
                if (header.Description.Length > 0) w.WriteLine($"about:     {header.Description}");
                w.WriteLine(string.Create(ci, $"dropped:   {dropped ?? 0} records{(dropped is > 0 ? " (the capture fell behind: the trace has gaps)" : "")}"));
            }
            w.WriteLine(string.Create(ci, $"records:   {s.Records}"));
            w.WriteLine(string.Create(ci, $"sessions:  {s.Sessions.Count} ({string.Join(", ", s.Sessions.Take(16))}{(s.Sessions.Count > 16 ? ", ..." : "")})"));
            foreach (var (op, name) in Operations)
            {
                long c = s.Count(op);
                if (c == 0) continue;
                w.WriteLine(string.Create(ci, $"  {name,-8} {c,10} ({100.0 * c / Math.Max(1, s.Records),5:F1}%) {s.Bytes(op) / 1048576.0,12:F2} MiB"));
            }
            double span = s.Records == 0 ? 0 : (s.LastEventNs - s.FirstSubmitNs) / 1e9;
            w.WriteLine(string.Create(ci, $"time span: {span:F6} s (submits from {s.FirstSubmitNs / 1e9:F6} s to {s.LastSubmitNs / 1e9:F6} s)"));
            w.WriteLine(string.Create(ci, $"reaches:   sector {s.EndSector} ({s.EndSector * 512.0 / 1048576.0:F2} MiB)"));
            if (s.FailedRecords > 0) w.WriteLine(string.Create(ci, $"failed:    {s.FailedRecords} records with a status other than OKAY"));
            if (s.WithoutCompletion > 0) w.WriteLine(string.Create(ci, $"no completion: {s.WithoutCompletion} records"));
            if (s.WithDataHash > 0) w.WriteLine(string.Create(ci, $"hashed:    {s.WithDataHash} records carry a data hash"));
            if (s.OutOfOrder > 0) w.WriteLine(string.Create(ci, $"out of order: {s.OutOfOrder} records submitted earlier than the record before them"));
            if (s.UnalignedLengths > 0) w.WriteLine(string.Create(ci, $"unaligned: {s.UnalignedLengths} reads/writes whose length is not a multiple of 512"));
            return CliApp.Ok;
        });
        return cmd;
    }

    private static readonly (BlkifOperation Op, string Name)[] Operations =
        [(BlkifOperation.Read, "read"), (BlkifOperation.Write, "write"), (BlkifOperation.WriteBarrier, "barrier"), (BlkifOperation.FlushDiskCache, "flush"), (BlkifOperation.Discard, "discard")];

    private static object InfoJson(string path, TraceFormat format, TraceSummary s, TraceHeader? header, ulong? dropped) => new
    {
        file = path,
        format = format.ToString().ToLowerInvariant(),
        version = header?.Version,
        created = header?.CreatedUtc.ToString("u", CultureInfo.InvariantCulture),
        description = header?.Description,
        dropped_records = header == null ? (ulong?)null : dropped ?? 0,
        records = s.Records,
        sessions = s.Sessions.Count,
        session_ids = s.Sessions,
        operations = Operations.ToDictionary(o => o.Name, o => new { count = s.Count(o.Op), bytes = s.Bytes(o.Op) }),
        time_span_s = s.Records == 0 ? 0 : (s.LastEventNs - s.FirstSubmitNs) / 1e9,
        first_submit_s = s.FirstSubmitNs / 1e9,
        last_submit_s = s.LastSubmitNs / 1e9,
        end_sector = s.EndSector,
        failed_records = s.FailedRecords,
        without_completion = s.WithoutCompletion,
        with_data_hash = s.WithDataHash,
        out_of_order = s.OutOfOrder,
        unaligned_lengths = s.UnalignedLengths,
    };
}
