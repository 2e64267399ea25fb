namespace BlkTap.Linux.Interop;

/// <summary>io_uring constants (linux/io_uring.h) used by <see cref="Storage.UringQueue"/>.</summary>
internal static class IoUring
{
    // NOTE: linux/io_uring.h enum io_uring_op: IORING_OP_READ 22, IORING_OP_WRITE 23 (non-vectored, offset in off).
    public const byte IORING_OP_READ = 22;
    public const byte IORING_OP_WRITE = 23;

    // NOTE: linux/io_uring.h: io_uring_enter(2) flags.
    public const uint IORING_ENTER_GETEVENTS = 1;

    // NOTE: linux/io_uring.h: the mmap offsets of the submission ring, completion ring and SQE array.
    public const long IORING_OFF_SQ_RING = 0;
    public const long IORING_OFF_CQ_RING = 0x8000000;
    public const long IORING_OFF_SQES = 0x10000000;

    // NOTE: linux/io_uring.h: io_uring_params.features bit IORING_FEAT_NODROP (the kernel keeps completions that do
    // not fit the CQ ring instead of dropping them).
    public const uint IORING_FEAT_NODROP = 1u << 1;

    // NOTE: asm-generic/mman-common.h MAP_POPULATE 0x8000 (x86_64 and aarch64).
    public const int MAP_POPULATE = 0x8000;
}
