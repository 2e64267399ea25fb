using BlkTap.Testing;
using NUnit.Framework;
using BlkTap.Testing.Generators;

namespace BlkTap.Examples.Tests.Contracts;

// The terminator contract, once per terminator (and per interposer that serves from its own storage over one).

/// <summary><c>mem</c>: one shared sparse memory disk.</summary>
public sealed class MemTerminatorContract : TerminatorContract
{
    protected override ChainCase Chain(bool readOnly) => new([$"mem:size={DiskBytes}{(readOnly ? ",readonly=true" : "")}"], null);
}

/// <summary><c>mem</c> with <c>shared=false</c>: each session its own disk.</summary>
public sealed class MemUnsharedTerminatorContract : TerminatorContract
{
    protected override bool SharesTheDiskBetweenSessions => false;

    protected override ChainCase Chain(bool readOnly) => new([$"mem:size={DiskBytes},shared=false{(readOnly ? ",readonly=true" : "")}"], null);
}

/// <summary><c>img</c> over a fresh sparse file: discard punches a hole.</summary>
public sealed class ImgTerminatorContract : TerminatorContract
{
    protected override ChainCase Chain(bool readOnly) =>
        new([$"img:path={ChainCase.DirToken}/disk.raw{(readOnly ? ",readonly=true" : "")}"], null)
        {
            Resources = [new ImageFileResource("disk.raw", DiskBytes, null)],
        };
}

/// <summary><c>aio</c> over a fresh sparse file: no discard.</summary>
public sealed class AioTerminatorContract : TerminatorContract
{
    protected override bool AdvertisesDiscard => false;

    protected override ChainCase Chain(bool readOnly) =>
        new([$"aio:path={ChainCase.DirToken}/disk.raw,depth=8{(readOnly ? ",readonly=true" : "")}"], null)
        {
            Resources = [new ImageFileResource("disk.raw", DiskBytes, null)],
        };
}

/// <summary><c>nbd</c> against the project's own NBD server (in process, a memory export; TRIM zeroes).</summary>
public sealed class NbdTerminatorContract : TerminatorContract
{
    protected override ChainCase Chain(bool readOnly) =>
        new([$"nbd:uri=nbd+unix:///?socket={ChainCase.DirToken}/nbd.sock"], null)
        {
            Resources = [new NbdExportResource("nbd.sock", DiskBytes, readOnly)],
        };
}

/// <summary>
/// <c>cow</c> over <c>mem</c>: the overlay serves writes; no discard (the overlay has no zeroed state). Read-only: a
/// read-only base with <c>readonly-base=false</c>. The cow decides from the session's flag, so it writes its overlay
/// when a tap above clears the flag.
/// </summary>
public sealed class CowOverMemTerminatorContract : TerminatorContract
{
    protected override bool AdvertisesDiscard => false;
    protected override bool RefusesWritesPastTheRingCheck => false;

    protected override ChainCase Chain(bool readOnly) => readOnly
        ? new([$"cow:overlay={ChainCase.DirToken}/disk.cow,readonly-base=false", $"mem:size={DiskBytes},readonly=true"], null)
        : new([$"cow:overlay={ChainCase.DirToken}/disk.cow,cluster=4K", $"mem:size={DiskBytes}"], null);
}

/// <summary>
/// <c>crypt</c> over <c>mem</c>, as dm-crypt without allow_discards: no discard, and a never-written sector decrypts to
/// noise, not zeros.
/// </summary>
public sealed class CryptOverMemTerminatorContract : TerminatorContract
{
    protected override bool FreshDiskReadsZeros => false;
    protected override bool AdvertisesDiscard => false;

    protected override ChainCase Chain(bool readOnly) =>
        new([$"crypt:keyfile={ChainCase.DirToken}/key", $"mem:size={DiskBytes}{(readOnly ? ",readonly=true" : "")}"], null)
        {
            Resources = [new KeyFileResource("key", 64, 17)],
        };
}

/// <summary><c>crypt</c> with <c>discard=true</c> over <c>mem</c>: discards pass, and all-zero ciphertext reads as zeros.</summary>
public sealed class CryptWithDiscardOverMemTerminatorContract : TerminatorContract
{
    protected override ChainCase Chain(bool readOnly) =>
        new([$"crypt:keyfile={ChainCase.DirToken}/key,discard=true", $"mem:size={DiskBytes}{(readOnly ? ",readonly=true" : "")}"], null)
        {
            Resources = [new KeyFileResource("key", 32, 18)],
        };
}

/// <summary>
/// <c>vbd</c> down to a vbd that a plain blkback serves from a memory disk (<see cref="EmulatedLowerVbd"/>), as the
/// interposition scenario on a real dom0: the contract holds through a second ring and a second grant table.
/// </summary>
public sealed class VbdTerminatorContract : TerminatorContract
{
    protected override ChainCase Chain(bool readOnly) =>
        new(["vbd:dev=xvdb,depth=8"], null) { Resources = [new LowerVbdResource("xvdb", DiskBytes, readOnly)] };
}

/// <summary><c>qcow2</c> over an empty image with 4 KiB clusters and a raw backing file of zeroes: discard reads as zeroes.</summary>
public sealed class Qcow2TerminatorContract : TerminatorContract
{
    protected override ChainCase Chain(bool readOnly) =>
        new([$"qcow2:path={ChainCase.DirToken}/disk.qcow2{(readOnly ? ",readonly=true" : "")}"], null)
        {
            Resources = [new ImageFileResource("base.raw", DiskBytes, null), new Qcow2ImageResource("disk.qcow2", DiskBytes, 4096, "base.raw")],
        };
}
