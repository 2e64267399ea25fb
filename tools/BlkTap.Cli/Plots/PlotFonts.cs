using SkiaSharp;

namespace BlkTap.Cli.Plots;

/// <summary>
/// Whether the pictures can have text: SkiaSharp's self-contained Linux build reads fonts from <c>/usr/share/fonts</c>
/// without fontconfig; with none there, ScottPlot still draws every line and bar but no label. Thread-safe.
/// </summary>
internal static class PlotFonts
{
    /// <summary>A one-line warning for stderr when no font is found, else null.</summary>
    // NOTE: with no font file, SkiaSharp's directory font manager still reports one (empty) family; its default
    // typeface has no glyphs, which is the test that works.
    public static string? Warning() => SKFontManager.Default.FontFamilyCount > 0 && SKTypeface.Default.GlyphCount > 0
        ? null
        : "blktap: warning: no fonts found (SkiaSharp reads /usr/share/fonts): the picture has no labels; install one, e.g. apt-get install fonts-dejavu-core";
}
