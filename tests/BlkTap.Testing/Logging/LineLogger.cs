using Microsoft.Extensions.Logging;

namespace BlkTap.Testing.Logging;

/// <summary>An <see cref="ILogger"/> handing each formatted message (with its exception's message) to a callback, for tests that collect log lines.</summary>
/// <remarks>Threading: as thread-safe as the callback.</remarks>
public sealed class LineLogger(Action<string> line) : ILogger
{
    /// <inheritdoc/>
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    /// <inheritdoc/>
    public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

    /// <inheritdoc/>
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        line(formatter(state, exception) + (exception == null ? "" : $" ({exception.GetType().Name}: {exception.Message})"));
}
