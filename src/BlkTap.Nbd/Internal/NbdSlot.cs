using System.Runtime.InteropServices;

namespace BlkTap.Nbd.Internal;

/// <summary>
/// One request in flight on a <see cref="NbdLoopTransmission"/>: the command, its reply header, its data buffer
/// (page-aligned native memory, reused while it is at most <see cref="KeepCapacity"/>), and the pooled
/// <see cref="BufferRequest"/> it becomes on the direct path. Owned by the transmission; loop thread, except that a
/// backend may complete it on another thread (see <see cref="NbdLoopTransmission"/>).
/// </summary>
internal sealed unsafe class NbdSlot
{
    /// <summary>Buffers up to this size stay with the slot for the next request; larger ones are freed after use.</summary>
    public const int KeepCapacity = 1 << 20;

    private const int Page = 4096;

    public NbdSlot(NbdLoopTransmission owner)
    {
        Owner = owner;
        Header = (byte*)NativeMemory.AlignedAlloc(NbdMagic.SimpleReplyHeaderSize, 16);
        Request = new BufferRequest();
        Request.Completed = r => Owner.CompleteDirect(this, r.Status);
        CompleteOnLoop = () => Owner.Complete(this);
    }

    public NbdLoopTransmission Owner { get; }

    /// <summary>The 16-byte simple reply header (native).</summary>
    public byte* Header { get; }

    public nint Data { get; private set; }

    public int Capacity { get; private set; }

    public BufferRequest Request { get; }

    /// <summary>Posted to the loop when a backend completes the slot on another thread.</summary>
    public Action CompleteOnLoop { get; }

    /// <summary>A view of <see cref="Data"/> for backends that take <see cref="Memory{T}"/>.</summary>
    public NativeMemoryManager Memory { get; } = new();

    public NbdRequestHeader Command;

    /// <summary>NBD error of the reply (0: success).</summary>
    public int Error;

    /// <summary>Bytes of the write payload received so far.</summary>
    public int PayloadDone;

    /// <summary>For a write that will be refused: the error to answer once its payload has been consumed.</summary>
    public int PresetError;

    /// <summary>
    /// For a read the chain answered with a file range: the file (referenced with DangerousAddRef until
    /// <see cref="DropFile"/>) whose bytes from <see cref="Request"/>'s <see cref="BufferRequest.FileOffset"/> are the
    /// reply's data; null: the data is in <see cref="Data"/>.
    /// </summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle? File;

    /// <summary>Lets go of <see cref="File"/> (after the reply, or when it is dropped).</summary>
    public void DropFile()
    {
        var f = File;
        if (f == null) return;
        File = null;
        f.DangerousRelease();
    }

    /// <summary>Bytes counted against the connection's buffer budget.</summary>
    public int Budget;

    /// <summary>Reply bytes: the header, plus the data of a successful read.</summary>
    public int ReplyLength => NbdMagic.SimpleReplyHeaderSize + (Error == 0 && Command.Command == NbdCommand.Read ? (int)Command.Length : 0);

    /// <summary>Makes <see cref="Data"/> hold at least <paramref name="length"/> bytes.</summary>
    public void EnsureCapacity(int length)
    {
        if (length <= Capacity) return;
        FreeData();
        int cap = Math.Max(Page, (length + Page - 1) / Page * Page);
        Data = (nint)NativeMemory.AlignedAlloc((nuint)cap, Page);
        Capacity = cap;
    }

    /// <summary>After the request: drop an oversized buffer so a burst of large requests does not stay resident.</summary>
    public void Trim()
    {
        if (Capacity > KeepCapacity) FreeData();
    }

    private void FreeData()
    {
        if (Data != 0) NativeMemory.AlignedFree((void*)Data);
        Data = 0;
        Capacity = 0;
    }

    /// <summary>Frees the native memory. Only when no backend holds the slot.</summary>
    public void Free()
    {
        FreeData();
        NativeMemory.AlignedFree(Header);
    }
}
