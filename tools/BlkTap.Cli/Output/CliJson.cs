using System.Text.Json;

namespace BlkTap.Cli.Output;

/// <summary>
/// How every verb's <c>--json</c> prints: exactly one JSON object on one line of stdout, property names in
/// snake_case as the verb spells them; progress, tap output and logs go to stderr. Stateless, thread-safe.
/// </summary>
internal static class CliJson
{
    private static readonly JsonSerializerOptions Options = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Writes <paramref name="value"/> (usually an anonymous object) as one line of JSON.</summary>
    public static void Write(TextWriter output, object value) => output.WriteLine(JsonSerializer.Serialize(value, Options));

    /// <summary>The <c>--json</c> option, described the same way on every verb.</summary>
    public static System.CommandLine.Option<bool> Option(string? what = null) => new("--json")
    {
        Description = "print exactly one JSON object on stdout" + (what == null ? "" : $" ({what})") + "; progress and logs go to stderr",
    };
}
