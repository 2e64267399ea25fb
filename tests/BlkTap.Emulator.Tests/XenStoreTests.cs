using BlkTap.Emulator;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace BlkTap.Emulator.Tests;

public class XenStoreTests
{
    [Test]
    public void Write_DeepPath_CreatesParentsWithEmptyValues()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        emu.Store.Write("/a/b/c", "v");
        Assert.That(emu.Store.Read("/a/b/c"), Is.EqualTo("v"));
        Assert.That(emu.Store.Read("/a/b"), Is.EqualTo(""));
        Assert.That(emu.Store.Directory("/a"), Is.EqualTo(new[] { "b" }));
    }

    [Test]
    public void Remove_Node_RemovesItsSubtree()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        emu.Store.Write("/a/b/c", "1");
        emu.Store.Write("/a/d", "2");
        Assert.That(emu.Store.Remove("/a/b"), Is.True);
        Assert.That(emu.Store.Read("/a/b/c"), Is.Null);
        Assert.That(emu.Store.Directory("/a"), Is.EqualTo(new[] { "d" }));
        Assert.That(emu.Store.Remove("/a/b"), Is.False);
    }

    [TestCase("relative")]
    [TestCase("/trailing/")]
    [TestCase("/double//slash")]
    [TestCase("/bad char")]
    public void Write_InvalidPath_ThrowsNamingThePath(string path)
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var e = Assert.Throws<ArgumentException>(() => emu.Store.Write(path, "x"));
        Assert.That(e!.Message, Does.Contain(path));
    }

    [Test]
    public void Watch_Set_FiresOnceImmediatelyWithItsPath()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var fired = new List<string>();
        using var w = emu.Store.Watch("/x", fired.Add);
        Assert.That(fired, Is.Empty, "watch callbacks run on the scheduler, not in Watch");
        emu.RunUntilIdle();
        Assert.That(fired, Is.EqualTo(new[] { "/x" }));
    }

    [Test]
    public void Watch_ChangesAtOrBelow_FireInOrderAndSiblingsDoNot()
    {
        using var emu = XenEmulator.CreateDeterministic(5);
        var fired = new List<string>();
        using var w = emu.Store.Watch("/dev/vbd", fired.Add);
        emu.RunUntilIdle();
        fired.Clear();

        emu.Store.Write("/dev/vbd", "1");
        emu.Store.Write("/dev/vbd/5/state", "2");
        emu.Store.Write("/dev/vbdx", "3");   // a sibling with a common prefix
        emu.Store.Write("/dev/other", "4");
        emu.Store.Write("/dev/vbd/5/state", "2"); // same value: still fires
        Assert.That(fired, Is.Empty, "callbacks never run on the writer's stack");
        emu.RunUntilIdle();

        Assert.That(fired, Is.EqualTo(new[] { "/dev/vbd", "/dev/vbd/5/state", "/dev/vbd/5/state" }));
    }

    [Test]
    public void Watch_AncestorRemoved_FiresWithTheWatchedPath()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        emu.Store.Write("/a/b/c", "1");
        var fired = new List<string>();
        using var w = emu.Store.Watch("/a/b/c", fired.Add);
        emu.RunUntilIdle();
        fired.Clear();
        emu.Store.Remove("/a");
        emu.RunUntilIdle();
        Assert.That(fired, Is.EqualTo(new[] { "/a/b/c" }));
    }

    [Test]
    public void Watch_Disposed_StopsFiringEvenForQueuedEvents()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var fired = new List<string>();
        var w = emu.Store.Watch("/a", fired.Add);
        emu.RunUntilIdle();
        emu.Store.Write("/a", "1");
        w.Dispose();
        emu.RunUntilIdle();
        Assert.That(fired, Is.EqualTo(new[] { "/a" }));
        Assert.That(emu.Store.WatchCount, Is.EqualTo(0));
    }

    [Test]
    public void Watch_ReleaseDomain_FiresWhenADomainIsDestroyed()
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var guest = emu.CreateDomain("guest");
        var fired = new List<string>();
        using var w = emu.Store.Watch("@releaseDomain", fired.Add);
        emu.RunUntilIdle();
        emu.DestroyDomain(guest.Id);
        emu.RunUntilIdle();
        Assert.That(fired, Is.EqualTo(new[] { "@releaseDomain", "@releaseDomain" }));
    }

    [Test]
    public void Watch_ThreadedScheduler_CallbackRunsOffTheWriterThread()
    {
        using var emu = new XenEmulator();
        int callbackThread = 0, count = 0;
        using var w = emu.Store.Watch("/t", _ => { callbackThread = Environment.CurrentManagedThreadId; Interlocked.Increment(ref count); });
        emu.Store.Write("/t", "1");
        emu.RunUntil(() => Volatile.Read(ref count) == 2);
        Assert.That(callbackThread, Is.Not.EqualTo(Environment.CurrentManagedThreadId));
    }

    /// <summary>After any sequence of writes and removes, reads and listings agree with a flat model.</summary>
    [FsCheck.NUnit.Property(MaxTest = 100)]
    public void WriteRemove_AnySequence_MatchesAFlatModel(int[] script)
    {
        using var emu = XenEmulator.CreateDeterministic(1);
        var names = new[] { "a", "b", "c" };
        var model = new Dictionary<string, string>();
        foreach (int step in script ?? Array.Empty<int>())
        {
            int s = step & 0x7fffffff;
            string path = "/" + names[s % 3] + ((s / 3) % 2 == 0 ? "" : "/" + names[(s / 6) % 3]);
            if ((s / 18) % 3 == 0)
            {
                emu.Store.Remove(path);
                foreach (var key in model.Keys.Where(k => k == path || k.StartsWith(path + "/", StringComparison.Ordinal)).ToList()) model.Remove(key);
            }
            else
            {
                emu.Store.Write(path, s.ToString());
                model[path] = s.ToString();
                int slash = path.LastIndexOf('/');
                if (slash > 0) model.TryAdd(path[..slash], "");
            }
        }
        foreach (var a in names)
        {
            Assert.That(emu.Store.Read("/" + a), Is.EqualTo(model.GetValueOrDefault("/" + a)));
            foreach (var b in names)
                Assert.That(emu.Store.Read($"/{a}/{b}"), Is.EqualTo(model.GetValueOrDefault($"/{a}/{b}")));
            var children = model.Keys.Where(k => k.StartsWith($"/{a}/", StringComparison.Ordinal)).Select(k => k[(a.Length + 2)..]).OrderBy(k => k, StringComparer.Ordinal);
            Assert.That(emu.Store.Directory("/" + a), Is.EqualTo(children));
        }
    }
}
