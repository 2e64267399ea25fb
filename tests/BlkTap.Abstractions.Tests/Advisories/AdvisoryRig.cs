using System.Collections.Concurrent;
using BlkTap.Emulator;
using BlkTap.Testing;
using BlkTap.Testing.Rigs;

namespace BlkTap.Abstractions.Tests.Advisories;

/// <summary>
/// A threaded emulated system for the advisory tests: dom0 runs a tap (an inspect hook, then a memory disk) behind
/// the xenbus backend, whose grant mapper the test may wrap (to act at the moment the backend maps), and guests
/// with connected blkfronts. Unlike <see cref="EmulatorRig"/> it lets a test choose the emulator's options (zero-copy
/// read-only grants, so a guest's late rewrite of an indirect page is visible to a backend that reads it twice).
/// </summary>
internal sealed class AdvisoryRig : IAsyncDisposable
{
    public const long DiskBytes = 8L << 20;

    private readonly CancellationTokenSource _cts = new();
    private Task _loop = Task.CompletedTask;

    public required XenEmulator Emulator { get; init; }
    public required TapRuntime Runtime { get; init; }
    public required XenbusBlockBackend Backend { get; init; }
    public required MemoryBlockDevice Disk { get; init; }
    public IReadOnlyList<BlkFront> Frontends { get; private set; } = [];
    public ConcurrentQueue<TapDiagnostic> Diagnostics { get; } = new();

    /// <summary>The request hook's inspector (loop thread; null: pass everything).</summary>
    public Func<TapRequest, HookResult>? Inspect { get; set; }

    /// <remarks>
    /// The guests ask for one ring and no persistent grants unless told otherwise: the advisories are about per-request
    /// grant mapping, and the tests count rings and revoke grants right after a request (which persistent grants keep
    /// mapped until disconnect, as blkif.h allows).
    /// </remarks>
    public static async Task<AdvisoryRig> StartAsync(int guests = 2, bool protectReadOnlyGrants = true,
        Func<IGrantMapper, IGrantMapper>? wrapMapper = null, BlkifProtocol protocol = BlkifProtocol.X86_64,
        bool persistentGrants = false, int queues = 1, IBlockDevice? device = null)
    {
        var emulator = new XenEmulator(new XenEmulatorOptions { ProtectReadOnlyGrants = protectReadOnlyGrants });
        var disk = new MemoryBlockDevice(DiskBytes);
        AdvisoryRig? rig = null;
        var runtime = new TapRuntime(new TapRuntimeOptions { Name = "advisory", Diagnostics = d => rig?.Diagnostics.Enqueue(d) });
        runtime.RegisterRequestHook("inspect", Hook.Request(r => rig?.Inspect?.Invoke(r) ?? HookResult.Pass));
        var serve = new BlockDeviceHook(device ?? disk); // device: another disk in place of the mem one
        runtime.RegisterControlHook("mem", serve);
        runtime.RegisterRequestHook("mem", serve);
        var mapper = emulator.GrantMapperFor(0);
        var backend = new XenbusBlockBackend(runtime, emulator.Store, wrapMapper?.Invoke(mapper) ?? mapper, emulator.EventChannelFactoryFor(0));
        rig = new AdvisoryRig { Emulator = emulator, Runtime = runtime, Backend = backend, Disk = disk };
        rig._loop = runtime.RunAsync(rig._cts.Token);
        backend.Start();
        var fronts = new List<BlkFront>();
        for (int i = 0; i < guests; i++)
        {
            var dom = emulator.CreateDomain($"guest{i + 1}");
            XenbusDevices.CreateVbd(emulator.Store, dom.Id, 0, 51712, $"disk{i}");
            fronts.Add(new BlkFront(emulator, dom, 51712, new BlkFrontOptions
            {
                Protocol = protocol, RandomFirstSector = false, Seed = i + 1, PersistentGrants = persistentGrants, MaxQueues = queues,
            }));
        }
        rig.Frontends = fronts;
        await Waits.For(Task.WhenAll(fronts.Select(f => f.ConnectAsync())), "the guests' handshakes");
        return rig;
    }

    /// <summary>Allocates one page in <paramref name="front"/>'s domain and grants it to its backend's domain.</summary>
    public static (nint Page, uint Ref) GrantPage(BlkFront front, bool readOnly = false)
    {
        var page = front.Domain.AllocatePages();
        return (page, front.Domain.Grants.GrantAccess(front.BackendDomainId, page, readOnly));
    }

    /// <summary>The request as ring-entry bytes of <paramref name="layout"/>.</summary>
    public static byte[] Raw(in BlkifRequest r, BlkifLayout layout)
    {
        var bytes = new byte[layout.RingEntrySize];
        BlkifCodec.EncodeRequest(r, layout, bytes);
        return bytes;
    }

    public static BlkifRequest Rw(BlkifOperation op, ulong sector, params BlkifSegment[] segments)
    {
        var r = new BlkifRequest { Operation = op, Sector = sector, SegmentCount = segments.Length };
        for (int i = 0; i < segments.Length; i++) r.Segments[i] = segments[i];
        return r;
    }

    /// <summary>Diagnostics that carry an exception (a crash inside the loop).</summary>
    public IEnumerable<TapDiagnostic> Crashes => Diagnostics.Where(d => d.Exception != null);

    public async ValueTask DisposeAsync()
    {
        foreach (var f in Frontends) f.Dispose();
        Backend.Dispose();
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Runtime.Post(closed.SetResult);
        try { await closed.Task.WaitAsync(Waits.Deadline); } catch (TimeoutException) { }
        _cts.Cancel();
        await _loop.WaitAsync(Waits.Deadline);
        Runtime.Dispose();
        Emulator.Dispose();
    }
}
