namespace BlkTap.Nbd.Internal;

// The awaiting parts (C# does not allow await in the unsafe part of the class).
internal sealed partial class NbdLoopTransmission
{
    private async Task AwaitAsync(NbdSlot slot, ValueTask<int> pending)
    {
        int err;
        try { err = Normalize(await pending.ConfigureAwait(false)); }
        catch (Exception e) { err = Threw(e, slot.Command.Command.ToString()); }
        slot.Error = err;
        if (_loop.IsLoopThread) Complete(slot);
        else _loop.Post(slot.CompleteOnLoop);
    }

    private async Task FinalFlushAsync()
    {
        try
        {
            if (!_backend.ReadOnly && !_abort.IsCancellationRequested)
            {
                int err = await _backend.FlushAsync(_abort).ConfigureAwait(false);
                if (err != 0) _log($"final flush failed: {NbdError.Name(err)}");
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception e) { _log($"final flush threw {e.GetType().Name}: {e.Message}"); }
        _completion.TrySetResult();
    }
}
