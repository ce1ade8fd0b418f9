using System.Diagnostics;

namespace Sidecar.Telemetry;

/// <summary>The sidecar's one <see cref="ActivitySource"/>: a span per stream (with events for what the sidecar decided) and per resume.</summary>
internal static class SidecarActivity
{
    public const string SourceName = "Sidecar";

    public static readonly ActivitySource Source = new(SourceName);
}
