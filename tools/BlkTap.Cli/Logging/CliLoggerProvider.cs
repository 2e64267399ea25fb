using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace BlkTap.Cli.Logging;

/// <summary>
/// The serve verbs' log lines on a <see cref="TextWriter"/> (stderr, or a test's writer), in the format
/// <c>--log-format</c> chose: plain text, one JSON object per line, or journald priority prefixes. Every line is
/// written whole and flushed before <c>Log</c> returns, so lines never interleave and none is lost at exit.
/// </summary>
/// <remarks>Threading: loggers may be used from any thread; writes are serialised by one lock.</remarks>
public sealed class CliLoggerProvider : ILoggerProvider
{
    private readonly TextWriter _writer;
    private readonly CliLogFormat _format;
    private readonly Lock _lock = new();

    /// <summary>Writes to <paramref name="writer"/> in <paramref name="format"/> (<see cref="CliLogFormat.Auto"/> is resolved here).</summary>
    public CliLoggerProvider(TextWriter writer, CliLogFormat format)
    {
        _writer = writer ?? throw new ArgumentNullException(nameof(writer));
        _format = new CliLogSettings(LogLevel.Information, format).Resolve().Format;
    }

    /// <summary>The format lines are written in.</summary>
    public CliLogFormat Format => _format;

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new CliLogger(this, categoryName);

    /// <inheritdoc/>
    public void Dispose() { lock (_lock) _writer.Flush(); }

    private void Write<TState>(string category, LogLevel level, EventId eventId, TState state, Exception? exception, string message)
    {
        string line = _format switch
        {
            CliLogFormat.Json => Json(category, level, eventId, state, exception, message),
            CliLogFormat.Journal => $"<{Priority(level)}>{OneLine(message)}{ExceptionSuffix(exception)}",
            _ => $"blktap: {LevelPrefix(level)}{OneLine(message)}{ExceptionSuffix(exception)}",
        };
        lock (_lock)
        {
            _writer.WriteLine(line);
            _writer.Flush();
        }
    }

    private static string OneLine(string message) => message.Contains('\n') ? message.Replace("\r", "").Replace('\n', ' ') : message;

    private static string ExceptionSuffix(Exception? ex) => ex == null ? "" : $" ({ex.GetType().Name}: {OneLine(ex.Message)})";

    private static string LevelPrefix(LogLevel level) => level switch
    {
        LogLevel.Trace => "trace: ",
        LogLevel.Debug => "debug: ",
        LogLevel.Warning => "warning: ",
        LogLevel.Error => "error: ",
        LogLevel.Critical => "critical: ",
        _ => "",
    };

    // NOTE: sd-daemon(3) / syslog(3): <2> crit, <3> err, <4> warning, <6> info, <7> debug.
    private static int Priority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    private static string Json<TState>(string category, LogLevel level, EventId eventId, TState state, Exception? exception, string message)
    {
        var buffer = new MemoryStream();
        // Relaxed escaping: '+' in the timestamp and quotes in messages stay readable; the output is still valid JSON.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("Timestamp", DateTimeOffset.UtcNow.ToString("O"));
            json.WriteNumber("EventId", eventId.Id);
            json.WriteString("LogLevel", level.ToString());
            json.WriteString("Category", category);
            json.WriteString("Message", message);
            if (exception != null) json.WriteString("Exception", exception.ToString());
            if (state is IReadOnlyList<KeyValuePair<string, object?>> properties)
            {
                json.WriteStartObject("State");
                foreach (var (key, value) in properties)
                {
                    if (key == "{OriginalFormat}") continue;
                    switch (value)
                    {
                        case null: json.WriteNull(key); break;
                        case bool b: json.WriteBoolean(key, b); break;
                        case int or long or short or byte or uint or ushort or sbyte: json.WriteNumber(key, Convert.ToInt64(value)); break;
                        case ulong u: json.WriteNumber(key, u); break;
                        case double d when double.IsFinite(d): json.WriteNumber(key, d); break;
                        default: json.WriteString(key, Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)); break;
                    }
                }
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private sealed class CliLogger(CliLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            provider.Write(category, logLevel, eventId, state, exception, formatter(state, exception));
        }
    }
}
