using BlkTap.Testing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Abstractions.Tests.Ring;

/// <summary>
/// Single-threaded model check of <see cref="FrontRing"/> and <see cref="BackRing"/> over one shared
/// ring: a random interleaving of frontend and backend steps, indices starting near 2^32, then a
/// drain in which a consumer that went to sleep (its final check returned 0) only wakes when the
/// other side's push says "notify". Nothing may be lost, duplicated or reordered, and no push may
/// skip the notification a sleeping consumer needs.
/// </summary>
[TestFixture]
public sealed class RingModelProperties
{
    [FsCheck.NUnit.Property(Arbitrary = new[] { typeof(BlkTapArbitraries) }, MaxTest = 300)]
    public void RandomInterleaving_FromIndicesNearWrap_EveryRequestAnsweredInOrderAndNoNotificationMissed(
        RingGeometry geometry, byte[] steps, byte load)
    {
        int target = (int)(geometry.EntryCount * 3 * load / 255);
        using var model = new RingModel(geometry, target);
        foreach (var step in steps) model.Step(step % 9);
        model.Drain();

        Assert.That(model.Violations, Is.Empty);
        Assert.That(model.Produced, Is.EqualTo(target), "the frontend could not send every request");
        Assert.That(model.BackendTaken, Is.EqualTo(target), "the backend did not see every request (a missed notification leaves it asleep)");
        Assert.That(model.FrontendReceived, Is.EqualTo(target), "the frontend did not get every response (a missed notification leaves it asleep)");
    }

    [Test]
    public void Model_PushThatNeverNotifies_IsDetected()
    {
        // The checker itself must be able to fail: suppress every request notification and the
        // sleeping backend must be reported.
        using var model = new RingModel(new RingGeometry(BlkifProtocol.X86_64, 0, uint.MaxValue - 3), 10) { SuppressRequestNotifications = true };
        model.Step(6); // the backend finds nothing and sleeps
        model.Drain();
        Assert.That(model.Violations, Is.Not.Empty);
        Assert.That(model.BackendTaken, Is.Zero);
    }

    /// <summary>The two ring ends and the checks; one thread.</summary>
    private sealed class RingModel : IDisposable
    {
        private readonly NativeRingMemory _memory;
        private readonly FrontRing _front;
        private readonly BackRing _back;
        private readonly int _target;
        private readonly Queue<ulong> _owed = new();
        private bool _backSleeping, _frontSleeping;

        public RingModel(RingGeometry g, int target)
        {
            _target = target;
            _memory = new NativeRingMemory(g.Bytes);
            _memory.InitialiseAt(g.StartIndex);
            _front = new FrontRing(_memory.Address, g.Bytes, g.Layout, g.StartIndex);
            _back = new BackRing(_memory.Address, g.Bytes, g.Layout, g.StartIndex);
        }

        public bool SuppressRequestNotifications { get; init; }
        public List<string> Violations { get; } = [];
        public int Produced { get; private set; }
        public int BackendTaken { get; private set; }
        public int FrontendReceived { get; private set; }

        public void Step(int action)
        {
            switch (action)
            {
                case 0 or 1: Produce(); break;
                case 2: PushRequests(); break;
                case 3: if (!_backSleeping) TakeOneRequest(); break;
                case 4: RespondOne(); break;
                case 5: PushResponses(); break;
                case 6: if (!_backSleeping) _backSleeping = Checked(_back.FinalCheckForRequests(), "FinalCheckForRequests") == 0; break;
                case 7: if (!_frontSleeping) TakeOneResponse(); break;
                case 8: if (!_frontSleeping) _frontSleeping = Checked(_front.FinalCheckForResponses(), "FinalCheckForResponses") == 0; break;
            }
        }

        /// <summary>Runs both ends to quiescence the way real event loops do, sleeping on final check 0.</summary>
        public void Drain()
        {
            for (int round = 0; round < 4 * _target + 16 && Violations.Count == 0; round++)
            {
                while (Produce()) { }
                PushRequests();
                if (!_backSleeping)
                {
                    while (TakeOneRequest()) { }
                    _backSleeping = Checked(_back.FinalCheckForRequests(), "FinalCheckForRequests") == 0;
                }
                while (RespondOne()) { } // I/O completions happen whether or not the loop sleeps
                PushResponses();
                if (!_frontSleeping)
                {
                    while (TakeOneResponse()) { }
                    _frontSleeping = Checked(_front.FinalCheckForResponses(), "FinalCheckForResponses") == 0;
                }
                if (FrontendReceived == _target && Produced == _target) break;
            }
        }

        private bool Produce()
        {
            if (Produced >= _target || _front.IsFull) return false;
            ulong id = (ulong)Produced;
            var r = new BlkifRequest { Operation = BlkifOperation.Write, SegmentCount = 1, Id = id, Sector = id * 8 };
            r.Segments[0] = new BlkifSegment((uint)id, 0, 7);
            _front.EnqueueRequest(r);
            Produced++;
            return true;
        }

        private void PushRequests()
        {
            uint before = _memory.ReqProd;
            bool notify = _front.PushRequestsAndCheckNotify() && !SuppressRequestNotifications;
            bool published = _memory.ReqProd != before;
            if (notify) _backSleeping = false;
            else if (published && _backSleeping)
                Violations.Add($"requests published up to {_memory.ReqProd} without notifying a sleeping backend (req_event {_memory.ReqEvent})");
        }

        private void PushResponses()
        {
            uint before = _memory.RspProd;
            bool notify = _back.PushResponsesAndCheckNotify();
            bool published = _memory.RspProd != before;
            if (notify) _frontSleeping = false;
            else if (published && _frontSleeping)
                Violations.Add($"responses published up to {_memory.RspProd} without notifying a sleeping frontend (rsp_event {_memory.RspEvent})");
        }

        private bool TakeOneRequest()
        {
            if (Checked(_back.UnconsumedRequests(), "UnconsumedRequests") <= 0) return false;
            _back.TakeRequest(out var r);
            if (r.Id != (ulong)BackendTaken || r.Sector != r.Id * 8 || r.Segments[0].GrantRef != (uint)r.Id)
                Violations.Add($"backend took request {BlkifRequestText.Describe(r)} where request {BackendTaken} was due");
            BackendTaken++;
            _owed.Enqueue(r.Id);
            return true;
        }

        private bool RespondOne()
        {
            if (_owed.Count == 0) return false;
            _back.EnqueueResponse(new BlkifResponse(_owed.Dequeue(), BlkifOperation.Write, BlkifStatus.Okay));
            return true;
        }

        private bool TakeOneResponse()
        {
            if (Checked(_front.UnconsumedResponses(), "UnconsumedResponses") <= 0) return false;
            var rsp = _front.TakeResponse();
            if (rsp.Id != (ulong)FrontendReceived)
                Violations.Add($"frontend got a response for {rsp.Id} where {FrontendReceived} was due");
            FrontendReceived++;
            return true;
        }

        private long Checked(long value, string what)
        {
            if (value < 0) Violations.Add($"{what} reported a protocol error on a well-behaved ring");
            return Math.Max(0, value);
        }

        public void Dispose() => _memory.Dispose();
    }
}
