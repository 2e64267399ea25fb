using BlkTap.Chains;
using BlkTap.Storage;

namespace BlkTap.Examples.Qcow2;

/// <summary>
/// <c>qcow2</c>: terminates on a qcow2 image (qemu's format, versions 2 and 3; docs/qcow2.md): clusters of 512 B to
/// 2 MiB, zero and compressed (zlib, zstd) clusters, backing files (raw or qcow2, chains) read through for unallocated
/// clusters. The image is checked when the chain is built, so a bad one is a chain spec error naming the problem.
/// </summary>
public sealed class Qcow2TapFactory : ITapFactory
{
    /// <inheritdoc/>
    public string Name => "qcow2";
    /// <inheritdoc/>
    public string Description => "qcow2 image (qemu's format, v2/v3; backing files, zero, zlib and zstd clusters; see docs/qcow2.md)";
    /// <inheritdoc/>
    public bool IsTerminator => true;
    /// <inheritdoc/>
    public IReadOnlyList<TapOptionInfo> Options { get; } =
    [
        new("path", "the qcow2 image (make one with 'blktap qcow2 create' or 'qemu-img create -f qcow2')", Required: true),
        new("readonly", "open the image read-only and answer writes with ERROR (default false)"),
    ];

    /// <inheritdoc/>
    public ITap Create(TapSpec spec, TapContext context)
    {
        var path = spec.Require("path");
        bool readOnly = spec.GetBool("readonly", false);
        try { return new Qcow2Tap(Qcow2Image.Open(path, !readOnly, TapStorage.Of(context))); }
        catch (Qcow2FormatException ex) { throw new ChainSpecException($"tap 'qcow2': {ex.Message}"); }
    }
}

/// <summary>
/// The <c>qcow2</c> tap: every session is served from one open image through a <see cref="BlockDeviceHook"/>
/// (synchronous I/O on the loop, like <c>img</c>). FLUSH, barriers and FUA writes run the image's ordered flush.
/// </summary>
/// <remarks>Threading: loop thread only (hook rules). Disposing flushes and closes the image and its backing chain.</remarks>
public sealed class Qcow2Tap : TapBase, IRequestHook, IControlHook
{
    private readonly BlockDeviceHook _hook;
    private TapRuntime? _runtime;

    /// <summary>Serves <paramref name="image"/>, which the tap owns from now on.</summary>
    public Qcow2Tap(Qcow2Image image) : base("qcow2")
    {
        Device = new Qcow2BlockDevice(image, message => _runtime?.Report(TapDiagnosticLevel.Error, null, message));
        _hook = new BlockDeviceHook(Device);
    }

    /// <summary>The device over the image.</summary>
    public Qcow2BlockDevice Device { get; }

    /// <inheritdoc/>
    public HookResult OnRequest(TapRequest request) => _hook.OnRequest(request);

    /// <inheritdoc/>
    public void OnControl(ControlEvent controlEvent)
    {
        _runtime ??= controlEvent.Session.Runtime;
        _hook.OnControl(controlEvent);
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        Device.Dispose();
        base.Dispose();
    }
}
