using Spectre.Console;

namespace BlkTap.Cli.Output;

/// <summary>
/// The one progress style of the long verbs (<c>replay</c>, <c>fuzz</c>, <c>cow commit</c>, <c>bench</c>): a Spectre
/// progress bar on stderr, drawn only when stderr is a terminal, so stdout keeps only the report (and, with
/// <c>--json</c>, exactly one JSON object).
/// </summary>
/// <remarks>Threading: <see cref="Start"/> from any thread; the returned bar's members may be called from any
/// thread, concurrently; dispose it once, after the work.</remarks>
internal static class CliProgress
{
    /// <summary>True when <paramref name="io"/>'s stderr is the process's stderr and that is a terminal.</summary>
    public static bool Enabled(CliIo io) => io.Err == Console.Error && !Console.IsErrorRedirected;

    /// <summary>
    /// Starts a bar titled <paramref name="title"/> that is full at <paramref name="max"/>; a bar that draws nothing
    /// when stderr is not a terminal.
    /// </summary>
    public static IProgressBar Start(CliIo io, string title, double max)
        => Enabled(io) ? new SpectreBar(title, max) : NullBar.Instance;

    private sealed class NullBar : IProgressBar
    {
        public static readonly NullBar Instance = new();
        public double Value { get; set; }
        public string Title { get; set; } = "";
        public double Max { get; set; }
        public void Dispose() { }
    }

    private sealed class SpectreBar : IProgressBar
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<ProgressTask> _task = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _render;
        private int _disposed;

        public SpectreBar(string title, double max)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(Console.Error),
                Ansi = AnsiSupport.Detect,
                ColorSystem = ColorSystemSupport.Detect,
                Interactive = InteractionSupport.Yes,
            });
            _render = Task.Run(() => console.Progress().AutoClear(false).HideCompleted(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .StartAsync(async ctx =>
                {
                    _task.SetResult(ctx.AddTask(Markup.Escape(title), maxValue: Math.Max(1, max)));
                    await _done.Task;
                }));
            // Wait until the task exists, so the first Value set is not lost (bounded: the render loop starts at once).
            Task.WaitAny(_task.Task, _render);
        }

        private ProgressTask? Task0 => _task.Task.IsCompletedSuccessfully ? _task.Task.Result : null;

        public double Value
        {
            get => Task0?.Value ?? 0;
            set { if (Task0 is { } t) t.Value = Math.Min(value, t.MaxValue); }
        }

        public double Max
        {
            get => Task0?.MaxValue ?? 0;
            set { if (Task0 is { } t) t.MaxValue = Math.Max(1, value); }
        }

        public string Title
        {
            get => Task0?.Description ?? "";
            set { if (Task0 is { } t) t.Description = Markup.Escape(value); }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            _done.TrySetResult();
            try { _render.Wait(TimeSpan.FromSeconds(10)); }
            catch (AggregateException) { } // a terminal that went away: the work's result still stands
        }
    }
}

/// <summary>A progress bar from <see cref="CliProgress.Start"/>. Threading: members callable from any thread.</summary>
internal interface IProgressBar : IDisposable
{
    /// <summary>How far the work is, from 0 to <see cref="Max"/>.</summary>
    double Value { get; set; }
    /// <summary>The value at which the bar is full.</summary>
    double Max { get; set; }
    /// <summary>What the bar is about.</summary>
    string Title { get; set; }
}
