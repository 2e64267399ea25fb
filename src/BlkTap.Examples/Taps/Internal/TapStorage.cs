using BlkTap.Chains;
using BlkTap.Linux.Storage;
using BlkTap.Storage;

namespace BlkTap.Examples;

/// <summary>The storage a tap opens its files on: the context's, or the OS's files. Stateless; thread-safe.</summary>
internal static class TapStorage
{
    public static IStorageProvider Of(TapContext context) => context.Storage ?? LinuxStorageProvider.Shared;

    public static IStorageProvider OrDefault(IStorageProvider? storage) => storage ?? LinuxStorageProvider.Shared;
}
