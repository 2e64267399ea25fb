namespace BlkTap.Emulator;

/// <summary>
/// A <see cref="BlkFront"/> call failed because the device is not usable: the backend broke the ring
/// protocol (the frontend is then broken for good), the device was disconnected, or the handshake failed.
/// A backend's error answer to a request is a status (<see cref="BlkifStatus.Error"/>), not this. When the
/// backend closed the device and wrote why (its <c>hotplug-error</c> node), the message ends with that reason.
/// </summary>
public sealed class BlkFrontException : Exception
{
    /// <summary>Creates the exception with a message naming the problem.</summary>
    public BlkFrontException(string message) : base(message)
    {
    }
}
