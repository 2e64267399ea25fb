using System.Runtime.InteropServices;
using BlkTap.Linux.Storage;
using BlkTap.Storage;
using NUnit.Framework;

namespace BlkTap.Linux.Tests.Storage;

/// <summary>The io_uring binding behind <see cref="IQueuedStorageFile"/>, on a file in /dev/shm against pread/pwrite.</summary>
public unsafe class UringQueueTests
{
    private const int Block = 4096;
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm");
        _dir = Directory.CreateDirectory(Path.Combine("/dev/shm", "blktap-uring-" + Guid.NewGuid().ToString("N"))).FullName;
    }

    [TearDown]
    public void TearDown()
    {
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
    }

    private IStorageFile CreateFile(long bytes, out IStorageQueue queue, int entries = 32)
    {
        var file = LinuxStorageProvider.Shared.Create(Path.Combine(_dir, "f"));
        file.SetLength(bytes);
        var q = ((IQueuedStorageFile)file).OpenQueue(entries, out var why);
        if (q == null)
        {
            file.Dispose();
            Assert.Ignore($"io_uring unavailable here: {why}");
        }
        queue = q!;
        return file;
    }

    private static Dictionary<int, int> Complete(IStorageQueue queue)
    {
        queue.SubmitAndWait();
        var results = new Dictionary<int, int>();
        while (queue.TryReap(out int tag, out int res)) results.Add(tag, res);
        Assert.That(queue.Outstanding, Is.Zero);
        return results;
    }

    [Test]
    public void QueueReadWrite_FileInMemory_EqualsPreadPwrite()
    {
        using var file = CreateFile(16 * Block, out var queue);
        using var _ = queue;
        var buf = (byte*)NativeMemory.AlignedAlloc(4 * Block, Block);
        try
        {
            var span = new Span<byte>(buf, 4 * Block);
            Random.Shared.NextBytes(span);
            var expected = span.ToArray();
            queue.QueueWrite((nint)buf, Block, 3 * Block, 1);
            queue.QueueWrite((nint)(buf + Block), 3 * Block, 8 * Block, 2);
            Assert.That(Complete(queue), Is.EquivalentTo(new Dictionary<int, int> { [1] = Block, [2] = 3 * Block }));
            var back = new byte[4 * Block];
            file.ReadFully(back.AsSpan(0, Block), 3 * Block);
            file.ReadFully(back.AsSpan(Block), 8 * Block);
            Assert.That(back, Is.EqualTo(expected), "pread sees what the ring wrote");

            var other = new byte[2 * Block];
            Random.Shared.NextBytes(other);
            file.Write(other, 5 * Block);
            span.Clear();
            queue.QueueRead((nint)buf, 2 * Block, 5 * Block, 7);
            // The last 512 bytes of the file and beyond: a short read, as pread answers it.
            queue.QueueRead((nint)(buf + 2 * Block), Block, 16 * Block - 512, 8);
            Assert.That(Complete(queue), Is.EquivalentTo(new Dictionary<int, int> { [7] = 2 * Block, [8] = 512 }));
            Assert.That(span[..(2 * Block)].ToArray(), Is.EqualTo(other), "the ring reads what pwrite wrote");
        }
        finally { NativeMemory.AlignedFree(buf); }
    }

    [Test]
    public void QueueRead_BatchFull_Throws()
    {
        using var file = CreateFile(Block, out var queue, entries: 4);
        using var _ = queue;
        var buf = (byte*)NativeMemory.AlignedAlloc(Block, Block);
        try
        {
            for (int i = 0; i < queue.Capacity; i++) queue.QueueRead((nint)buf, 512, 0, i);
            Assert.Throws<InvalidOperationException>(() => queue.QueueRead((nint)buf, 512, 0, 99));
            Assert.That(Complete(queue).Values, Is.All.EqualTo(512));
        }
        finally { NativeMemory.AlignedFree(buf); }
    }

    [Test]
    public void RandomBatches_AgainstModel_ResultsAndContentsMatch()
    {
        const int Blocks = 64;
        using var file = CreateFile(Blocks * Block, out var queue, entries: 32);
        using var _ = queue;
        var model = new byte[Blocks * Block];
        var buffers = (byte*)NativeMemory.AlignedAlloc((nuint)(queue.Capacity * 4 * Block), Block);
        var rng = new Random(1234);
        try
        {
            for (int batch = 0; batch < 300; batch++)
            {
                // Distinct blocks in one batch (the queue's contract: no overlapping write in a batch).
                var starts = Enumerable.Range(0, Blocks).OrderBy(_ => rng.Next()).Take(rng.Next(1, queue.Capacity + 1)).ToList();
                var ops = new List<(int Tag, bool Write, int Offset, int Length, nint Buffer)>();
                for (int i = 0; i < starts.Count; i++)
                {
                    bool write = rng.Next(2) == 0;
                    int length = 512 * rng.Next(1, 9);
                    int offset = starts[i] * Block;
                    var buffer = (nint)(buffers + i * 4 * Block);
                    var span = new Span<byte>((void*)buffer, length);
                    if (write) { rng.NextBytes(span); span.CopyTo(model.AsSpan(offset)); queue.QueueWrite(buffer, length, offset, i); }
                    else { span.Fill(0xEE); queue.QueueRead(buffer, length, offset, i); }
                    ops.Add((i, write, offset, length, buffer));
                }
                var results = Complete(queue);
                foreach (var op in ops)
                {
                    Assert.That(results[op.Tag], Is.EqualTo(op.Length), $"batch {batch} op {op.Tag}");
                    if (!op.Write)
                        Assert.That(new Span<byte>((void*)op.Buffer, op.Length).SequenceEqual(model.AsSpan(op.Offset, op.Length)), Is.True, $"batch {batch}: read at {op.Offset}");
                }
            }
            var whole = new byte[model.Length];
            file.ReadFully(whole, 0);
            Assert.That(whole.AsSpan().SequenceEqual(model), Is.True, "the file equals the model");
        }
        finally { NativeMemory.AlignedFree(buffers); }
    }

    [Test]
    public void OpenQueue_FileNotInMemory_NullWithoutComplaint()
    {
        var dir = Directory.CreateTempSubdirectory("blktap-uring-disk-").FullName;
        try
        {
            using var file = LinuxStorageProvider.Shared.Create(Path.Combine(dir, "f"));
            if (((LinuxStorageFile)file).InMemory) Assert.Ignore("the temporary directory is on tmpfs here");
            var queue = ((IQueuedStorageFile)file).OpenQueue(8, out var why);
            Assert.That(queue, Is.Null);
            Assert.That(why, Is.Null, "not offered is no failure to report");
        }
        finally { Directory.Delete(dir, true); }
    }
}
