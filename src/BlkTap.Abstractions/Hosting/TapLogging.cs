using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace BlkTap.Hosting;

/// <summary>
/// A runtime's diagnostics and control events as <see cref="ILogger"/> lines (the console, or journald under
/// systemd), for the hosted services.
/// </summary>
/// <remarks>Threading: the returned delegates and hook are called from the runtime's loop thread (diagnostics also from
/// any thread that reports one); <see cref="ILogger"/> implementations are thread-safe.</remarks>
public static class TapLogging
{
    /// <summary>The logger category of a runtime's diagnostics and control events.</summary>
    public const string Category = "BlkTap.TapRuntime";

    /// <summary>A <see cref="TapRuntimeOptions.Diagnostics"/> sink writing each diagnostic at its level.</summary>
    public static Action<TapDiagnostic> Diagnostics(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return d => Log(logger, d);
    }

    /// <summary>Logs one diagnostic at its level (what <see cref="Diagnostics"/> and <see cref="TapRuntimeOptions.Logger"/> do).</summary>
    public static void Log(ILogger logger, TapDiagnostic d)
    {
        ArgumentNullException.ThrowIfNull(logger);
        var level = d.Level switch
        {
            TapDiagnosticLevel.Error => LogLevel.Error,
            TapDiagnosticLevel.Warning => LogLevel.Warning,
            _ => LogLevel.Information,
        };
        logger.Log(level, d.Exception, "{Session}{Message}", d.Session != null ? d.Session.Name + ": " : "", d.Message);
    }

    /// <summary>
    /// A control hook logging each event (attach, connect, close) with the session's image and size, and at a close the
    /// session's statistics (requests, errors, rejected, bytes read and written). Register it after the chain: control
    /// hooks run in registration order and the chain registers its terminator's first, so an Attach line shows the size
    /// the terminator found, not 0.
    /// </summary>
    public static IControlHook ControlHook(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return Hook.Control(e =>
        {
            var s = e.Session;
            if (e.Kind == ControlEventKind.Disconnect)
            {
                var st = s.Statistics;
                logger.LogInformation("{Kind} {Session}{Image}{Reason}: {Requests} requests, {Errors} errors, {Rejected} rejected, " +
                    "{BytesRead} bytes read, {BytesWritten} bytes written", e.Kind, s.Name, ImageText(s), e.Reason == null ? "" : " (" + e.Reason + ")",
                    st.Requests, st.Errors, st.Rejected, st.BytesRead, st.BytesWritten);
                return;
            }
            logger.LogInformation("{Kind} {Session}{Image} sectors={Sectors}{Reason}", e.Kind, s.Name, ImageText(s), s.Sectors,
                e.Reason == null ? "" : " (" + e.Reason + ")");
        });
    }

    private static string ImageText(TapSession s) => s.ImageId == null ? "" : " image=" + s.ImageId;

    /// <summary>
    /// Sends the runtime's diagnostics to the container's logger (category <see cref="Category"/>) and adds the
    /// control hook <paramref name="hookName"/> from <see cref="ControlHook"/>; call after the chain is added.
    /// </summary>
    public static TapRuntimeBuilder LogToContainer(this TapRuntimeBuilder builder, string hookName = "log")
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.ConfigureOptions((options, sp) =>
        {
            if (sp?.GetService<ILoggerFactory>() is { } factory) options.Diagnostics = Diagnostics(factory.CreateLogger(Category));
        });
        return builder.AddControlHook(hookName, sp => ControlHook(sp.GetRequiredService<ILoggerFactory>().CreateLogger(Category)));
    }
}
