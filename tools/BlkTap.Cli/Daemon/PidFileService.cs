using System.Text;
using Microsoft.Extensions.Hosting;

namespace BlkTap.Cli.Daemon;

/// <summary>
/// <c>--pidfile</c>: writes the process id (decimal, a newline) to a file when the host starts, atomically (a
/// temporary file renamed over it), and removes it when the host is disposed, if it still holds this process's id.
/// Register it after the serve service: hosted services start in registration order, so the file appears only once
/// the socket listens (what nbdkit's <c>-P</c> promises).
/// </summary>
/// <remarks>Threading: the host calls start, stop and dispose one at a time.</remarks>
internal sealed class PidFileService(string path) : IHostedService, IDisposable
{
    private readonly string _path = Path.GetFullPath(path);
    private bool _written;

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var temp = _path + ".tmp" + Environment.ProcessId;
        File.WriteAllText(temp, Environment.ProcessId + "\n", Encoding.ASCII);
        File.Move(temp, _path, overwrite: true);
        _written = true;
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Removes the file if it still names this process.</summary>
    public void Dispose()
    {
        if (!_written) return;
        _written = false;
        try
        {
            if (File.ReadAllText(_path).Trim() == Environment.ProcessId.ToString()) File.Delete(_path);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
