using BlkTap.Chains;
using BlkTap.Examples;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;
using BlkTap.Testing.Rigs;

namespace BlkTap.Examples.Tests.Taps;

public class CryptTapTests
{
    private static byte[] Hex(string s) => Convert.FromHexString(s);

    private static string Counting512()
    {
        var b = new byte[512];
        for (int i = 0; i < 512; i++) b[i] = (byte)i;
        return Convert.ToHexString(b);
    }

    // IEEE 1619-2007 Annex B XTS-AES-128 vectors 1, 2 and 4 (key = Key1 || Key2, tweak = data unit number).
    private static IEnumerable<TestCaseData> Vectors()
    {
        yield return new TestCaseData(new string('0', 64), (ulong)0, new string('0', 64),
            "917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e").SetName("EncryptUnit_IeeeVector1_MatchesCiphertext");
        yield return new TestCaseData(new string('1', 32) + new string('2', 32), 0x3333333333UL, new string('4', 64),
            "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0").SetName("EncryptUnit_IeeeVector2_MatchesCiphertext");
        yield return new TestCaseData("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0bfbebdbcbbbab9b8b7b6b5b4b3b2b1b0", 0x123456789aUL, new string('4', 64),
            "b01f86f8edc1863706fa8a4253e34f28af319de38334870f4dd1f94cbe9832f1").SetName("EncryptUnit_XtsVectorKeyFfFe_MatchesCiphertext");
        yield return new TestCaseData("2718281828459045235360287471352631415926535897932384626433832795", (ulong)0, Counting512(),
            "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89cc78cf7f5e543445f8333d8fa7f56000005279fa5d8b5e4ad40e736ddb4d35412"
          + "328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad0265"
          + "5ea92dc4c4e41a8952c651d33174be51a10c421110e6d81588ede82103a252d8a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434"
          + "1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c5ccf2a55d705ddcd86d449511ceb7ec30bf12b1fa35b913f9f747a8afd1b130e"
          + "94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3"
          + "e7ff72b1e99785ca0a7e7720c5b36dc6d72cac9574c8cbbc2f801e23e56fd344b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd"
          + "74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752afe656bb3c17256a9f6e9bf19fdd5a38fc82bbe872c5539edb609ef4f79c203e"
          + "bb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18deb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568")
            .SetName("EncryptUnit_IeeeVector4_MatchesCiphertext");
        // IEEE 1619-2007 vector 10: XTS-AES-256, data unit 0xff, 512 bytes.
        yield return new TestCaseData("27182818284590452353602874713526624977572470936999595749669676273141592653589793238462643383279502884197169399375105820974944592",
            (ulong)0xff, Counting512(), "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed43851ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151").SetName("EncryptUnit_IeeeVector10Aes256_MatchesCiphertext");
    }

    [TestCaseSource(nameof(Vectors))]
    public void EncryptUnit_Vector_MatchesAndDecryptsBack(string key, ulong unit, string plain, string cipher)
    {
        using var xts = new XtsAes(Hex(key));
        var data = Hex(plain);
        xts.EncryptUnit(data, unit);
        Assert.That(Convert.ToHexString(data), Is.EqualTo(cipher.ToUpperInvariant()));
        xts.DecryptUnit(data, unit);
        Assert.That(Convert.ToHexString(data), Is.EqualTo(plain.ToUpperInvariant()));
    }

    [FsCheck.NUnit.Property(MaxTest = 50)]
    public Property EncryptSectors_AnyKeyAndData_DecryptRestoresAndEachSectorDependsOnItsNumber()
    {
        var gen = from wide in Gen.Elements(false, true)
                  from key in Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i), wide ? 64 : 32)
                  from sectors in Gen.Choose(1, 8)
                  from data in Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i), sectors * 512)
                  from first in Gen.Choose(0, int.MaxValue)
                  select (key, data, (ulong)first * 3);
        return Prop.ForAll(gen.ToArbitrary(), t =>
        {
            using var xts = new XtsAes(t.key);
            var work = (byte[])t.data.Clone();
            xts.EncryptSectors(work, t.Item3);
            // Sector by sector equals unit encryption with its own number.
            var one = t.data.AsSpan(0, 512).ToArray();
            xts.EncryptUnit(one, t.Item3);
            bool firstMatches = one.AsSpan().SequenceEqual(work.AsSpan(0, 512));
            xts.DecryptSectors(work, t.Item3);
            return firstMatches && work.AsSpan().SequenceEqual(t.data);
        });
    }

    [Test]
    public async Task Chain_CryptOverImg_GuestReadsPlaintextAndImageHoldsXtsCiphertext()
    {
        var dir = Directory.CreateTempSubdirectory("crypt-tap-");
        try
        {
            var keyPath = Path.Combine(dir.FullName, "k");
            var key = new byte[64];
            new Random(3).NextBytes(key);
            File.WriteAllBytes(keyPath, key);
            var disk = Path.Combine(dir.FullName, "disk.raw");
            File.WriteAllBytes(disk, new byte[256 * 1024]);
            var chain = ChainRig.Build(null, $"crypt:keyfile={keyPath}", $"img:path={disk}");
            Assert.That(((CryptTap)chain[0]).KeyBits, Is.EqualTo(256));
            var rnd = new Random(4);
            var plain = ChainRig.Pattern(rnd, 24);
            var guestCopy = (byte[])plain.Clone();
            await using (var rig = await ChainRig.StartAsync(chain.ToArray()))
            {
                var front = rig.Frontends[0];
                Assert.That(await front.WriteAsync(40, plain), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(plain, Is.EqualTo(guestCopy), "the guest's buffer must be plaintext again after the write");
                var back = new byte[plain.Length];
                Assert.That(await front.ReadAsync(40, back), Is.EqualTo(BlkifStatus.Okay));
                Assert.That(back, Is.EqualTo(plain));
            }
            chain.Dispose();
            var image = File.ReadAllBytes(disk).AsSpan(40 * 512, plain.Length).ToArray();
            Assert.That(image, Is.Not.EqualTo(plain));
            using var xts = new XtsAes(key);
            var expected = (byte[])plain.Clone();
            xts.EncryptSectors(expected, 40);
            Assert.That(image, Is.EqualTo(expected));
        }
        finally { dir.Delete(true); }
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Chain_VerifiedWorkloadThroughCryptOverMem_NoMismatches(bool allowDiscard)
    {
        var keyPath = Path.GetTempFileName();
        try
        {
            var key = new byte[32];
            new Random(11).NextBytes(key);
            File.WriteAllBytes(keyPath, key);
            var chain = ChainRig.Build(null, $"crypt:keyfile={keyPath},discard={allowDiscard}", "mem:size=4M");
            await using var rig = await ChainRig.StartAsync(2, chain.ToArray());
            Assert.That(rig.Frontends[0].SupportsDiscard, Is.EqualTo(allowDiscard));
            if (!allowDiscard) Assert.That(await rig.Frontends[0].DiscardAsync(0, 8), Is.EqualTo(BlkifStatus.NotSupported));
            var results = await new BlkTap.Emulator.VerifiedWorkload(new BlkTap.Emulator.WorkloadOptions
            {
                OperationsPerFrontend = 300, DiscardPercent = 10, Seed = 12,
            }).RunAsync(rig.Rig);
            foreach (var r in results)
            {
                Assert.That(r.Problems, Is.Empty, r.Name);
                Assert.That(r.Mismatches + r.Errors, Is.Zero, r.Name);
            }
            if (allowDiscard) Assert.That(results.Sum(r => r.Discards), Is.GreaterThan(0));
        }
        finally { File.Delete(keyPath); }
    }

    [Test]
    public void Create_KeyFileWrongSize_ThrowsNamingFileAndSize()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, new byte[48]);
            var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, $"crypt:keyfile={path}", "mem"));
            Assert.That(ex!.Message, Does.Contain(path).And.Contain("48 bytes"));
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void Create_KeyHalvesEqual_ThrowsIeee1619()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, Enumerable.Repeat((byte)7, 32).ToArray());
            var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, $"crypt:keyfile={path}", "mem"));
            Assert.That(ex!.Message, Does.Contain("equal").And.Contain(path));
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void Create_MissingKeyFile_ThrowsNamingIt()
    {
        var ex = Assert.Throws<ChainSpecException>(() => ChainRig.Build(null, "crypt:keyfile=/nonexistent/key", "mem"));
        Assert.That(ex!.Message, Does.Contain("/nonexistent/key"));
    }
}
