using System.Collections;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace BlkTap.Trace;

/// <summary>
/// Enumerates a sequence on a thread of its own, up to a few blocks of items ahead of the consumer: a trace is read,
/// checked (CRC) and turned into requests on another core while <c>blktap replay</c> issues the requests it already has.
/// The consumer sees exactly the source's items in order; an exception the source throws is rethrown to the consumer
/// where it occurred, after the items before it.
/// </summary>
/// <remarks>
/// Threading: one consumer enumerates; the source is enumerated (and disposed) on the read-ahead thread, which starts
/// at the first <c>MoveNext</c>. Disposing the enumerator early stops the thread and waits for it, so the source is
/// disposed before <c>Dispose</c> returns.
/// </remarks>
public static class ReadAhead
{
    /// <summary>The items of <paramref name="source"/>, produced ahead in blocks of <paramref name="blockSize"/> (at most <paramref name="blocks"/> blocks waiting).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="blockSize"/> or <paramref name="blocks"/> is below 1.</exception>
    public static IEnumerable<T> Of<T>(IEnumerable<T> source, int blockSize = 4096, int blocks = 4)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blocks, 1);
        return new Sequence<T>(source, blockSize, blocks);
    }

    private sealed class Sequence<T>(IEnumerable<T> source, int blockSize, int blocks) : IEnumerable<T>
    {
        public IEnumerator<T> GetEnumerator() => new Enumerator<T>(source, blockSize, blocks);
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    private readonly record struct Block<T>(T[] Items, int Count, ExceptionDispatchInfo? Error, bool End);

    private sealed class Enumerator<T>(IEnumerable<T> source, int blockSize, int blocks) : IEnumerator<T>
    {
        private readonly BlockingCollection<Block<T>> _full = new(blocks);
        private readonly ConcurrentBag<T[]> _empty = new();
        private readonly CancellationTokenSource _stop = new();
        private Thread? _thread;
        private Block<T> _current = new([], 0, null, false);
        private int _index;
        private bool _ended, _disposed;

        public T Current { get; private set; } = default!;
        object? IEnumerator.Current => Current;

        public bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_index < _current.Count)
            {
                Current = _current.Items[_index++];
                return true;
            }
            while (!_ended)
            {
                if (_thread == null)
                {
                    _thread = new Thread(Produce) { IsBackground = true, Name = "blktap-read-ahead" };
                    _thread.Start();
                }
                if (_current.Items.Length > 0) _empty.Add(_current.Items);
                _current = _full.Take();
                _index = 0;
                if (_current.Count > 0)
                {
                    Current = _current.Items[_index++];
                    return true;
                }
                if (_current.Error != null) { _ended = true; _current.Error.Throw(); }
                if (_current.End) _ended = true;
            }
            return false;
        }

        private void Produce()
        {
            var ct = _stop.Token;
            T[] items = new T[blockSize];
            int count = 0;
            try
            {
                foreach (var item in source)
                {
                    items[count++] = item;
                    if (count == items.Length)
                    {
                        _full.Add(new Block<T>(items, count, null, false), ct);
                        items = _empty.TryTake(out var reused) ? reused : new T[blockSize];
                        count = 0;
                    }
                    if (ct.IsCancellationRequested) return;
                }
                _full.Add(new Block<T>(items, count, null, false), ct);
                _full.Add(new Block<T>([], 0, null, true), ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            catch (Exception ex)
            {
                try
                {
                    _full.Add(new Block<T>(items, count, null, false), ct);
                    _full.Add(new Block<T>([], 0, ExceptionDispatchInfo.Capture(ex), false), ct);
                }
                catch (OperationCanceledException) { }
            }
        }

        public void Reset() => throw new NotSupportedException("a read-ahead enumeration cannot be reset");

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _stop.Cancel();
            _thread?.Join();
            _stop.Dispose();
            _full.Dispose();
        }
    }
}
