namespace BlkTap;

/// <summary>The xenbus device state written to a device's <c>state</c> node.</summary>
/// <remarks>NOTE: values from xen/include/public/io/xenbus.h (enum xenbus_state).</remarks>
public enum XenbusState
{
    /// <summary>XenbusStateUnknown.</summary>
    Unknown = 0,
    /// <summary>XenbusStateInitialising.</summary>
    Initialising = 1,
    /// <summary>XenbusStateInitWait: finished early initialisation, waiting for the peer's details.</summary>
    InitWait = 2,
    /// <summary>XenbusStateInitialised: ring and event channel published.</summary>
    Initialised = 3,
    /// <summary>XenbusStateConnected.</summary>
    Connected = 4,
    /// <summary>XenbusStateClosing: the device is being torn down.</summary>
    Closing = 5,
    /// <summary>XenbusStateClosed.</summary>
    Closed = 6,
    /// <summary>XenbusStateReconfiguring.</summary>
    Reconfiguring = 7,
    /// <summary>XenbusStateReconfigured.</summary>
    Reconfigured = 8,
}
