namespace BlkTap.Emulator;

/// <summary>How an emulator runs the callbacks posted to it (event deliveries, watch events, posted work).</summary>
public enum SchedulerMode
{
    /// <summary>
    /// A dedicated "hypervisor" thread runs posted callbacks one at a time in FIFO order. Nothing needs
    /// to pump the emulator; <see cref="XenEmulator.RunUntilIdle"/> and <see cref="XenEmulator.RunUntil"/>
    /// wait for it.
    /// </summary>
    Threaded = 0,

    /// <summary>
    /// No thread of its own: the caller pumps with <see cref="XenEmulator.Step"/>,
    /// <see cref="XenEmulator.RunUntilIdle"/> or <see cref="XenEmulator.RunUntil"/>, and a
    /// <see cref="System.Random"/> seeded from <see cref="XenEmulatorOptions.Seed"/> picks which pending
    /// callback runs next, so a whole system runs single-threaded and replays from its seed.
    /// </summary>
    Deterministic = 1,
}

/// <summary>Options of a <see cref="XenEmulator"/>. A plain bag of settings, read once by the constructor.</summary>
public sealed class XenEmulatorOptions
{
    /// <summary>The scheduler mode (default <see cref="SchedulerMode.Threaded"/>).</summary>
    public SchedulerMode Mode { get; set; } = SchedulerMode.Threaded;

    /// <summary>Seed of the deterministic scheduler's choices (ignored in threaded mode).</summary>
    public int Seed { get; set; }

    /// <summary>
    /// Upper bound on callbacks one <see cref="XenEmulator.RunUntilIdle"/> or
    /// <see cref="XenEmulator.RunUntil"/> call may run in deterministic mode before it gives up with an
    /// exception (a livelock guard). Default 10 million.
    /// </summary>
    public long MaxStepsPerRun { get; set; } = 10_000_000;

    /// <summary>How long threaded-mode waits (<see cref="XenEmulator.RunUntilIdle"/>, <see cref="XenEmulator.RunUntil"/>) may take before they throw <see cref="TimeoutException"/>. Default 30 s.</summary>
    public TimeSpan WaitTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Map read-only grants write-protected (default true): the backend gets a read-only view of a copy of each page
    /// taken at map time, so a backend (or a tap) that writes into a write request's data faults with SIGSEGV as it
    /// does on real Xen, where gntdev maps such grants without PROT_WRITE. The cost is one 4 KiB copy per read-only
    /// page mapped; the backend does not see a guest changing such a page after the map. False: zero-copy,
    /// writable aliases of the guest's pages (the emulator before 2026-12-04).
    /// </summary>
    public bool ProtectReadOnlyGrants { get; set; } = true;
}
