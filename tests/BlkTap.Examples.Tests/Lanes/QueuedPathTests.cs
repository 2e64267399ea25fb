using BlkTap.Chains;
using BlkTap.Storage;
using BlkTap.Testing.Rigs;
using BlkTap.Emulator;
using NUnit.Framework;

namespace BlkTap.Examples.Tests.Lanes;

/// <summary>
/// img's io_uring path when the ring is refused or fails: the tap falls back to one system call per run, says so once,
/// and no exception reaches the loop.
/// </summary>
public class QueuedPathTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        _dir = Directory.CreateDirectory(Path.Combine("/dev/shm", "blktap-queued-" + Guid.NewGuid().ToString("N"))).FullName;
    }

    [TearDown]
    public void TearDown()
    {
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
    }

    private string Image(long bytes)
    {
        var path = Path.Combine(_dir, "disk.raw");
        using var f = File.Create(path);
        f.SetLength(bytes);
        return path;
    }

    [Test]
    public async Task RefusedQueue_Workload_FallsBackWithOneInformationLine()
    {
        var path = Image(8L << 20);
        var storage = new WrappingStorage((_, f) => new QueueFile((INoWaitStorageFile)f, _ => null, "io_uring_setup failed: errno 1 (test)"));
        var img = new ImgTap(path, readOnly: false, storage, uring: true);
        var diagnostics = new List<string>();
        await using (var rig = await Start(2, img, diagnostics))
        {
            var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 300, Seed = 5 }).RunAsync(rig);
            foreach (var r in results) Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
            List<string> lines;
            lock (diagnostics) lines = diagnostics.Where(d => d.Contains("no submission queue", StringComparison.Ordinal)).ToList();
            Assert.That(lines, Has.Count.EqualTo(1), "one line says why, once per image");
            Assert.That(lines[0], Does.Contain("errno 1 (test)"));
        }
        img.Dispose();
    }

    [Test]
    public async Task RingForEveryBatch_Workload_EqualsModel()
    {
        var path = Image(8L << 20);
        CountingQueue? counting = null;
        var storage = new WrappingStorage((_, f) => new QueueFile((INoWaitStorageFile)f, real => counting = new CountingQueue(real!), null));
        var img = new ImgTap(path, readOnly: false, storage, uring: true);
        var diagnostics = new List<string>();
        await using (var rig = await Start(2, img, diagnostics))
        {
            var results = await new VerifiedWorkload(new WorkloadOptions { OperationsPerFrontend = 500, DiscardPercent = 5, FlushPercent = 5, Seed = 9 }).RunAsync(rig);
            foreach (var r in results) Assert.That(r.Errors + r.Mismatches, Is.Zero, string.Join("; ", r.Problems));
        }
        img.Dispose();
        Assert.That(counting, Is.Not.Null, "the tap opened the queue");
        Assert.That(counting!.Operations, Is.GreaterThan(500), "the reads and writes went through the real io_uring");
    }

    [Test]
    public async Task FailingQueue_Write_AnsweredErrorThenServedWithoutTheQueue()
    {
        var path = Image(4L << 20);
        FailingQueue? failing = null;
        var storage = new WrappingStorage((_, f) => new QueueFile((INoWaitStorageFile)f, real => failing = new FailingQueue(real!), null));
        var img = new ImgTap(path, readOnly: false, storage, uring: true);
        var diagnostics = new List<string>();
        await using (var rig = await Start(1, img, diagnostics))
        {
            var front = rig.Frontends[0];
            var data = Enumerable.Repeat((byte)0x3C, 8192).ToArray();
            Assert.That(await front.WriteAsync(16, data), Is.EqualTo(BlkifStatus.Error), "the batch whose ring failed answers ERROR");
            Assert.That(failing, Is.Not.Null, "the tap used the queue");
            Assert.That(await front.WriteAsync(16, data), Is.EqualTo(BlkifStatus.Okay), "then the file goes on without it");
            var back = new byte[8192];
            Assert.That(await front.ReadAsync(16, back), Is.EqualTo(BlkifStatus.Okay));
            Assert.That(back, Is.EqualTo(data));
            Assert.That(failing!.Submits, Is.EqualTo(1), "the failed queue is not used again");
            Assert.That(failing.Disposed, Is.True, "and it is closed");
            lock (diagnostics) Assert.That(diagnostics.Any(d => d.Contains("submission queue failed", StringComparison.Ordinal)), Is.True);
        }
        img.Dispose();
    }

    private static Task<EmulatorRig> Start(int frontends, ImgTap img, List<string> diagnostics) =>
        EmulatorRig.StartAsync(new EmulatorRigOptions
        {
            Frontends = frontends,
            Diagnostics = d => { lock (diagnostics) diagnostics.Add(d.ToString()); },
        }, rt => TapChain.Register(rt, [img]));

    /// <summary>The OS file with its queue replaced: <c>make</c> gets the real queue (null when refused) and returns what the tap sees.</summary>
    private sealed class QueueFile(INoWaitStorageFile inner, Func<IStorageQueue?, IStorageQueue?> make, string? refusal) : INoWaitStorageFile, IQueuedStorageFile
    {
        public string Path => inner.Path;
        public bool ReadOnly => inner.ReadOnly;
        public long Length => inner.Length;
        public int Read(Span<byte> buffer, long offset) => inner.Read(buffer, offset);
        public void Write(ReadOnlySpan<byte> data, long offset) => inner.Write(data, offset);
        public bool TryReadNoWait(Span<byte> buffer, long offset, out int read) => inner.TryReadNoWait(buffer, offset, out read);
        public bool TryWriteNoWait(ReadOnlySpan<byte> data, long offset) => inner.TryWriteNoWait(data, offset);
        public void SetLength(long length) => inner.SetLength(length);
        public void Flush() => inner.Flush();
        public BlkifStatus PunchHole(long offset, long length) => inner.PunchHole(offset, length);
        public void Dispose() => inner.Dispose();

        public IStorageQueue? OpenQueue(int entries, out string? unavailable)
        {
            if (refusal != null) { unavailable = refusal; return make(null); }
            var real = ((IQueuedStorageFile)inner).OpenQueue(entries, out unavailable);
            if (real == null) Assert.Ignore($"io_uring unavailable here: {unavailable}");
            return make(real);
        }
    }

    /// <summary>The real ring, used for every batch (even of one operation), counting what it carried.</summary>
    private sealed class CountingQueue(IStorageQueue real) : IStorageQueue
    {
        public int Operations;
        public int Capacity => real.Capacity;
        public int MinimumBatch => 1;
        public int Outstanding => real.Outstanding;
        public void QueueRead(nint address, int length, long offset, int tag) { Operations++; real.QueueRead(address, length, offset, tag); }
        public void QueueWrite(nint address, int length, long offset, int tag) { Operations++; real.QueueWrite(address, length, offset, tag); }
        public void SubmitAndWait() => real.SubmitAndWait();
        public bool TryReap(out int tag, out int result) => real.TryReap(out tag, out result);
        public void Dispose() => real.Dispose();
    }

    /// <summary>A queue whose first submit throws as a broken ring would (nothing was started).</summary>
    private sealed class FailingQueue(IStorageQueue real) : IStorageQueue
    {
        public int Submits;
        public bool Disposed;
        public int Capacity => real.Capacity;
        public int MinimumBatch => 1; // every batch through the queue
        public int Outstanding => real.Outstanding;
        public void QueueRead(nint address, int length, long offset, int tag) => real.QueueRead(address, length, offset, tag);
        public void QueueWrite(nint address, int length, long offset, int tag) => real.QueueWrite(address, length, offset, tag);
        public void SubmitAndWait()
        {
            Submits++;
            throw new IOException("io_uring_enter failed: errno 5 (test)");
        }
        public bool TryReap(out int tag, out int result) => real.TryReap(out tag, out result);
        public void Dispose() { Disposed = true; real.Dispose(); }
    }
}
