using System.Globalization;
using BlkTap.Chains;

namespace BlkTap.Examples;

/// <summary>
/// <c>vbd</c>: the lower end of an interposing chain. The tap is a block frontend in the host's domain
/// (<see cref="XenbusBlockFrontend"/>) connected to a vbd that another backend serves (the kernel's
/// blkback above all: <c>xl block-attach 0 phy:/dev/loop0,xvdb,w</c> makes one in dom0), and every
/// request that reaches it goes down that vbd. Runs under <c>blktap xen serve</c> and in the emulator.
/// </summary>
public sealed class VbdTapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "vbd";
    /// <inheritdoc/>
    public string Description => "pass requests down to a vbd that another backend serves (kernel blkback): interposition";
    /// <inheritdoc/>
    public bool IsTerminator => true;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("dev", "the vbd in this domain to connect to: xvdb, 51728, or a frontend path /local/domain/0/device/vbd/51728", Required: true),
        new("domain", "the domain whose vbd it is (default: the domain blktap runs in, 0 in dom0)"),
        new("depth", "most ring requests in flight (default 32; each holds 11 granted pages)"),
        new("ring-order", "largest ring page order to ask for (default 2; the backend's max-ring-page-order caps it)"),
        new("timeout", "seconds to wait for the backend to connect (default 60)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var dev = spec.Get("dev");
        if (string.IsNullOrEmpty(dev)) throw new ChainSpecException("tap 'vbd': dev= is required (the vbd to pass requests to, e.g. dev=xvdb after 'xl block-attach 0 phy:/dev/loop0,xvdb,w')");
        long depth = spec.GetInt64("depth", 32);
        if (depth is < 1 or > 256) throw new ChainSpecException($"tap 'vbd': depth={depth} must be between 1 and 256");
        long order = spec.GetInt64("ring-order", 2);
        if (order is < 0 or > BlkifConstants.MaxRingPageOrder) throw new ChainSpecException($"tap 'vbd': ring-order={order} must be between 0 and {BlkifConstants.MaxRingPageOrder}");
        long timeout = spec.GetInt64("timeout", 60);
        if (timeout is < 1 or > 3600) throw new ChainSpecException($"tap 'vbd': timeout={timeout} must be between 1 and 3600 seconds");
        long domainOption = spec.GetInt64("domain", -1);
        if (domainOption != -1 && !XenDomainIds.IsValid((ulong)domainOption))
            throw new ChainSpecException($"tap 'vbd': domain={spec.Get("domain")} is not a domain id (0 to {XenDomainIds.FirstReserved - 1})");
        string? path = null;
        int deviceNumber = 0;
        if (dev.StartsWith('/')) path = dev;
        else if (!XenVirtualDevice.TryParse(dev, out deviceNumber, out var error))
            throw new ChainSpecException($"tap 'vbd': dev={dev}: {error}");
        if (context.CheckOnly) return new VbdTap(null);
        var platform = context.Frontends
            ?? throw new ChainSpecException("tap 'vbd' is a Xen block frontend: it needs a vbd that another backend serves in this domain, so it runs under 'blktap xen serve' (or in an emulator rig that gives it one), not here");
        path ??= XenbusBlockFrontend.PathFor(domainOption == -1 ? platform.DomainId : (ushort)domainOption, deviceNumber);
        XenbusBlockFrontend frontend;
        try
        {
            frontend = new XenbusBlockFrontend(platform, path, new XenbusFrontendOptions { Depth = (int)depth, MaxRingPageOrder = (int)order });
        }
        catch (XenbusFrontendException e) { throw new ChainSpecException($"tap 'vbd': {e.Message}"); }
        try
        {
            if (!frontend.ConnectAsync().Wait(TimeSpan.FromSeconds(timeout)))
                throw new ChainSpecException($"tap 'vbd': the backend of {path} ({frontend.BackendPath}) did not connect within {timeout} s (its state is {frontend.BackendState}: is a backend serving it?)");
        }
        catch (AggregateException e) when (e.InnerException is XenbusFrontendException inner)
        {
            frontend.Dispose();
            throw new ChainSpecException($"tap 'vbd': {inner.Message}");
        }
        catch (ChainSpecException)
        {
            frontend.Dispose();
            throw;
        }
        return new VbdTap(frontend);
    }
}

/// <summary>
/// The <c>vbd</c> tap: steals every request and sends it down its <see cref="XenbusBlockFrontend"/>; the
/// frontend answers it (from its event thread) when the lower backend has. Every session shares the vbd.
/// </summary>
/// <remarks>
/// Threading: hooks run on the loop thread; the frontend is thread-safe. A lower backend that goes away
/// answers everything with ERROR from then on (the frontend never hangs a request).
/// </remarks>
public sealed class VbdTap : TapBase, IRequestHook, IControlHook
{
    private readonly XenbusBlockFrontend? _frontend;

    /// <summary>Creates the tap over a connected frontend (null: a chain built only to be checked).</summary>
    public VbdTap(XenbusBlockFrontend? frontend) : base("vbd") => _frontend = frontend;

    /// <summary>The frontend requests go down (null in a checked-only chain).</summary>
    public XenbusBlockFrontend? Frontend => _frontend;

    /// <inheritdoc/>
    public void OnControl(ControlEvent e)
    {
        if (e.Kind != ControlEventKind.Attach) return;
        var session = e.Session;
        if (_frontend == null)
        {
            session.Runtime.Report(TapDiagnosticLevel.Error, session, "vbd: this chain was built only to be checked; it has no vbd");
            return;
        }
        session.Sectors = _frontend.Sectors;
        session.SectorSize = _frontend.SectorSize;
        session.ReadOnly = _frontend.IsReadOnly;
        session.SupportsFlush = _frontend.SupportsFlush || _frontend.SupportsBarrier;
        session.SupportsDiscard = _frontend.SupportsDiscard;
        session.Runtime.Report(TapDiagnosticLevel.Information, session, string.Create(CultureInfo.InvariantCulture,
            $"vbd: {_frontend.FrontendPath} -> {_frontend.BackendPath}: {_frontend.Sectors} sectors, ring order {_frontend.RingPageOrder}, depth {_frontend.Depth}, indirect {_frontend.IndirectSegments}, flush {_frontend.SupportsFlush}, discard {_frontend.SupportsDiscard}"));
    }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest r)
    {
        if (_frontend == null || !_frontend.Submit(r))
        {
            r.Status = BlkifStatus.Error;
            return HookResult.Respond;
        }
        return HookResult.Stolen;
    }

    /// <summary>
    /// Disconnects from the vbd in order (waiting at most 10 s for the lower backend to let go of the ring
    /// and pages), then releases the frontend.
    /// </summary>
    public override void Dispose()
    {
        if (_frontend == null) return;
        try { _frontend.DisconnectAsync().Wait(TimeSpan.FromSeconds(10)); }
        catch (AggregateException) { } // already failed or gone: Dispose still releases everything
        _frontend.Dispose();
    }
}
