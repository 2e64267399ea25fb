using System.Text;

namespace BlkTap.Testing.Shmring;

/// <summary>
/// A <see cref="TextWriter"/> that keeps what is written and lets a test wait for, or act at, the moment
/// a line containing some text is written: an event to wait on instead of a sleep.
/// </summary>
/// <remarks>
/// Threading: writes may come from any thread (callers serialise them, e.g. TextWriter.Synchronized);
/// an action registered with <see cref="OnLine"/> runs synchronously on the writing thread, inside the
/// write, so the writer cannot go on before it returns.
/// </remarks>
internal sealed class LineWatchWriter : TextWriter
{
    private readonly object _gate = new();
    private readonly StringBuilder _all = new();
    private readonly StringBuilder _line = new();
    private readonly List<(string Text, Action Action)> _watches = new();

    public override Encoding Encoding => Encoding.UTF8;

    /// <summary>Everything written so far.</summary>
    public string Text { get { lock (_gate) return _all.ToString(); } }

    /// <summary>Runs <paramref name="action"/> once, inside the write of the first line containing <paramref name="text"/>.</summary>
    public void OnLine(string text, Action action)
    {
        lock (_gate) _watches.Add((text, action));
    }

    /// <summary>Completes when a line containing <paramref name="text"/> has been written (from now on).</summary>
    public Task WhenLine(string text)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        OnLine(text, () => seen.TrySetResult());
        return seen.Task;
    }

    public override void Write(char value)
    {
        List<Action>? due = null;
        lock (_gate)
        {
            _all.Append(value);
            if (value != '\n') { _line.Append(value); return; }
            var line = _line.ToString();
            _line.Clear();
            for (int i = _watches.Count - 1; i >= 0; i--)
            {
                if (!line.Contains(_watches[i].Text, StringComparison.Ordinal)) continue;
                (due ??= new()).Add(_watches[i].Action);
                _watches.RemoveAt(i);
            }
        }
        if (due != null) foreach (var a in due) a();
    }

    public override void Write(string? value)
    {
        if (value == null) return;
        foreach (var c in value) Write(c);
    }
}
