namespace BlkTap.Emulator;

/// <summary>
/// Thrown by <see cref="XenEmulator.Step"/>, <see cref="XenEmulator.RunUntilIdle"/> and
/// <see cref="XenEmulator.RunUntil"/> when a callback the emulator ran (an event handler, a watch
/// callback, posted work) threw. The callback's exception is the <see cref="Exception.InnerException"/>;
/// the scheduler itself keeps running.
/// </summary>
public sealed class EmulatorFaultException : Exception
{
    /// <summary>Wraps the exception a scheduled callback threw.</summary>
    public EmulatorFaultException(Exception inner)
        : base($"a callback run by the emulator's scheduler threw {inner.GetType().Name}: {inner.Message}", inner)
    {
    }
}
