using BlkTap.Fuzz;

// blktap fuzz harness.
//   BlkTap.Fuzz TARGET                        AFL++ mode (run under afl-fuzz after `sharpfuzz` instrumented the target assemblies)
//   BlkTap.Fuzz TARGET --replay PATH...       run files (or every file in directories); exit 1 naming the first that fails
//   BlkTap.Fuzz TARGET --mutate N [--seed S] CORPUS_DIR
//                                             the corpus, then N random mutations of it, in-process (no AFL needed)
if (args.Length == 0 || !FuzzTargets.Names.Contains(args[0]))
{
    Console.Error.WriteLine($"blktap-fuzz: usage: BlkTap.Fuzz TARGET [--replay PATH... | --mutate N [--seed S] CORPUS_DIR]; targets: {string.Join(", ", FuzzTargets.Names)}");
    return 2;
}
string target = args[0];
if (args.Length == 1)
{
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        using var ms = new MemoryStream();
        stream.CopyTo(ms);
        FuzzTargets.Run(target, ms.ToArray());
    });
    return 0;
}
if (args[1] == "--replay") return Replay.Files(target, args[2..]);
if (args[1] == "--mutate") return Replay.Mutate(target, args[2..]);
Console.Error.WriteLine($"blktap-fuzz: unknown mode '{args[1]}'");
return 2;
