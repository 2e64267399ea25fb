using BenchmarkDotNet.Running;

// Run: dotnet run -c Release --project bench/BlkTap.Micro -- --filter '*'
// (or --filter '*Ring*', '--list flat'; see bench/RESULTS.md). Not run in CI.
BenchmarkSwitcher.FromAssembly(typeof(BlkTap.Micro.RingBenchmarks).Assembly).Run(args);
