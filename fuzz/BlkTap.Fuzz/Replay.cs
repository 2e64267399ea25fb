namespace BlkTap.Fuzz;

/// <summary>Running a target without AFL: over files, or over a corpus and random mutations of it.</summary>
internal static class Replay
{
    public static int Files(string target, string[] paths)
    {
        int n = 0;
        foreach (var file in Expand(paths))
        {
            n++;
            if (!RunOne(target, File.ReadAllBytes(file), file)) return 1;
        }
        Console.WriteLine($"blktap-fuzz: {target}: {n} inputs, no failure");
        return 0;
    }

    public static int Mutate(string target, string[] args)
    {
        if (args.Length < 2 || !int.TryParse(args[0], out int count)) { Console.Error.WriteLine("blktap-fuzz: --mutate N [--seed S] CORPUS_DIR"); return 2; }
        int seed = 1;
        int at = 1;
        if (args.Length >= 4 && args[1] == "--seed") { seed = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture); at = 3; }
        var corpus = Expand(args[at..]).Select(File.ReadAllBytes).ToList();
        if (corpus.Count == 0) corpus.Add([]);
        foreach (var input in corpus) if (!RunOne(target, input, "corpus")) return 1;
        var random = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var input = Mutator.Mutate(corpus[random.Next(corpus.Count)], corpus[random.Next(corpus.Count)], random);
            if (!RunOne(target, input, $"mutation {i} of seed {seed}")) return 1;
        }
        Console.WriteLine($"blktap-fuzz: {target}: {corpus.Count} corpus inputs and {count} mutations (seed {seed}), no failure");
        return 0;
    }

    private static bool RunOne(string target, byte[] input, string name)
    {
        try
        {
            FuzzTargets.Run(target, input);
            return true;
        }
        catch (Exception e)
        {
            var saved = Path.Combine(Path.GetTempPath(), $"blktap-fuzz-{target}-crash-{Environment.ProcessId}.bin");
            File.WriteAllBytes(saved, input);
            Console.Error.WriteLine($"blktap-fuzz: {target}: {name} failed (input saved to {saved}): {e}");
            return false;
        }
    }

    private static IEnumerable<string> Expand(IEnumerable<string> paths) =>
        paths.SelectMany(p => Directory.Exists(p) ? Directory.GetFiles(p).Order(StringComparer.Ordinal) : (IEnumerable<string>)[p]);
}

/// <summary>AFL-style havoc mutations: bit flips, interesting values, byte runs, splices, truncation.</summary>
internal static class Mutator
{
    private static readonly byte[] Interesting8 = [0, 1, 7, 8, 11, 12, 0x7F, 0x80, 0xFF];
    private static readonly uint[] Interesting32 = [0, 1, 32, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF0, 0x25609513, 0x49484156];

    public static byte[] Mutate(byte[] a, byte[] b, Random random)
    {
        var data = new List<byte>(a);
        int rounds = 1 << random.Next(1, 5);
        for (int r = 0; r < rounds; r++)
        {
            if (data.Count == 0) { data.Add((byte)random.Next(256)); continue; }
            int at = random.Next(data.Count);
            switch (random.Next(8))
            {
                case 0: data[at] ^= (byte)(1 << random.Next(8)); break;
                case 1: data[at] = Interesting8[random.Next(Interesting8.Length)]; break;
                case 2:
                    if (at + 4 <= data.Count)
                    {
                        uint v = Interesting32[random.Next(Interesting32.Length)];
                        bool big = random.Next(2) == 0;
                        for (int i = 0; i < 4; i++) data[at + i] = (byte)(big ? v >> (24 - 8 * i) : v >> (8 * i));
                    }
                    break;
                case 3: data[at] = (byte)random.Next(256); break;
                case 4: data.RemoveRange(at, random.Next(1, Math.Min(16, data.Count - at) + 1)); break;
                case 5: data.InsertRange(at, Enumerable.Repeat((byte)random.Next(256), random.Next(1, 32))); break;
                case 6:
                    if (b.Length > 0) { int from = random.Next(b.Length); data.InsertRange(at, b.Skip(from).Take(random.Next(1, 64))); }
                    break;
                default: data.RemoveRange(at, data.Count - at); break;
            }
        }
        return [.. data];
    }
}
