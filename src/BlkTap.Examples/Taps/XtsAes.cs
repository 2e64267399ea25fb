using System.Buffers.Binary;
using System.Security.Cryptography;

namespace BlkTap.Examples;

/// <summary>
/// XTS-AES (IEEE 1619-2007, NIST SP 800-38E) for data units that are whole numbers of 16-byte blocks,
/// built on the AES block cipher (<c>SymmetricAlgorithm.EncryptEcb</c> on <see cref="Aes"/>).
/// </summary>
/// <remarks>
/// NOTE: ciphertext stealing (IEEE 1619 section 5.3.2, for a last partial block) is not implemented:
/// the crypt tap only ever hands it 512-byte sectors, exactly 32 AES blocks, so no unit ends in a
/// partial block; other lengths are rejected with <see cref="ArgumentException"/>.
/// Threading: not thread-safe (the AES objects are shared); use one instance per thread. Dispose clears keys.
/// </remarks>
public sealed class XtsAes : IDisposable
{
    private const int Block = 16;
    private readonly Aes _data;
    private readonly Aes _tweak;

    /// <summary>
    /// Creates the cipher from <paramref name="key"/>: Key1 (data) followed by Key2 (tweak), 32 bytes
    /// for XTS-AES-128 or 64 for XTS-AES-256. Equal halves are allowed here (IEEE 1619 test vector 1
    /// uses them); the crypt tap rejects them.
    /// </summary>
    public XtsAes(ReadOnlySpan<byte> key)
    {
        if (key.Length != 32 && key.Length != 64)
            throw new ArgumentException($"an XTS-AES key is 32 (AES-128) or 64 (AES-256) bytes, not {key.Length}", nameof(key));
        int half = key.Length / 2;
        _data = Aes.Create();
        _data.Key = key[..half].ToArray();
        _tweak = Aes.Create();
        _tweak.Key = key[half..].ToArray();
    }

    /// <summary>Key bits per AES key (128 or 256).</summary>
    public int KeyBits => _data.KeySize;

    /// <summary>Encrypts one data unit in place; <paramref name="unitNumber"/> is the 128-bit little-endian tweak value.</summary>
    public void EncryptUnit(Span<byte> data, UInt128 unitNumber) => Transform(data, unitNumber, encrypt: true);

    /// <summary>Decrypts one data unit in place.</summary>
    public void DecryptUnit(Span<byte> data, UInt128 unitNumber) => Transform(data, unitNumber, encrypt: false);

    /// <summary>Encrypts consecutive 512-byte sectors in place, the first being sector <paramref name="firstSector"/> (dm-crypt plain64 tweak).</summary>
    public void EncryptSectors(Span<byte> data, ulong firstSector) => Sectors(data, firstSector, true);

    /// <summary>Decrypts consecutive 512-byte sectors in place.</summary>
    public void DecryptSectors(Span<byte> data, ulong firstSector) => Sectors(data, firstSector, false);

    private void Sectors(Span<byte> data, ulong firstSector, bool encrypt)
    {
        if (data.Length % 512 != 0) throw new ArgumentException($"{data.Length} bytes is not a whole number of 512-byte sectors", nameof(data));
        for (int i = 0; i < data.Length / 512; i++)
            Transform(data.Slice(i * 512, 512), firstSector + (ulong)i, encrypt);
    }

    private void Transform(Span<byte> data, UInt128 unitNumber, bool encrypt)
    {
        if (data.Length == 0 || data.Length % Block != 0 || data.Length > 4096)
            throw new ArgumentException($"data unit of {data.Length} bytes: need a multiple of 16 up to 4096 (no ciphertext stealing)", nameof(data));
        Span<byte> tweaks = stackalloc byte[4096];
        tweaks = tweaks[..data.Length];
        // NOTE: IEEE 1619-2007 section 5.1: the data unit sequence number is encoded little-endian in
        // 16 bytes, then T = AES-enc(Key2, i); dm-crypt's plain64 IV is the same for sector numbers.
        Span<byte> t = stackalloc byte[Block];
        BinaryPrimitives.WriteUInt128LittleEndian(t, unitNumber);
        _tweak.EncryptEcb(t, t, PaddingMode.None);
        for (int j = 0; j < data.Length; j += Block)
        {
            t.CopyTo(tweaks[j..]);
            MultiplyByAlpha(t);
        }
        Xor(data, tweaks);
        if (encrypt) _data.EncryptEcb(data, data, PaddingMode.None);
        else _data.DecryptEcb(data, data, PaddingMode.None);
        Xor(data, tweaks);
        CryptographicOperations.ZeroMemory(tweaks);
    }

    /// <summary>
    /// Multiplies the tweak by the primitive element alpha in GF(2^128).
    /// NOTE: IEEE 1619-2007 section 5.2: byte 0 is least significant (little-endian); a carry out of
    /// bit 127 folds back as x^7 + x^2 + x + 1 (0x87 into byte 0).
    /// </summary>
    internal static void MultiplyByAlpha(Span<byte> t)
    {
        var v = BinaryPrimitives.ReadUInt128LittleEndian(t);
        bool carry = (v >> 127) != 0;
        v <<= 1;
        if (carry) v ^= 0x87;
        BinaryPrimitives.WriteUInt128LittleEndian(t, v);
    }

    private static void Xor(Span<byte> data, ReadOnlySpan<byte> mask)
    {
        for (int i = 0; i + 8 <= data.Length; i += 8)
            BinaryPrimitives.WriteUInt64LittleEndian(data[i..], BinaryPrimitives.ReadUInt64LittleEndian(data[i..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(mask[i..]));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _data.Dispose();
        _tweak.Dispose();
    }
}
