using System.Globalization;

namespace ChatUpstream;

/// <summary>
/// What one chat request should do, parsed from <c>/scenario</c> directives in the user's message
/// (or the <c>x-emulator-scenario</c> header). See README.md for the grammar.
/// </summary>
public sealed record Scenario
{
    public int Deltas { get; init; } = 12;
    public int DeltaBytes { get; init; }
    public int ReasoningDeltas { get; init; }
    public bool WebSearch { get; init; }
    public string? Artifact { get; init; }
    public int PaceMs { get; init; }
    public int? DropAfter { get; init; }
    public int? StallAfter { get; init; }
    public int? EndAfter { get; init; }

    public int? DoneAfter { get; init; }
    public int? HalfAfter { get; init; }
    public int? GateAfter { get; init; }
    public bool GateBeforeHeaders { get; init; }
    public int? StreamErrorAfter { get; init; }
    public int? StreamErrorThenFinishAfter { get; init; }
    public bool PersistenceError { get; init; }
    public bool ResumeError { get; init; }
    public string? InBandAck { get; init; }
    public string? CallbackAck { get; init; }
    public bool CallbackEarly { get; init; }
    public int AckDelayMs { get; init; }
    public bool SaveFails { get; init; }
    public int SavedAfterMs { get; init; }
    public string? ErrorBody { get; init; }
    public bool Crlf { get; init; }
    public int ChunkBytes { get; init; }
    public bool NoFinalBlankLine { get; init; }
    public int LongLineBytes { get; init; }
    public int BinaryBytes { get; init; }
    public bool BadJson { get; init; }
    public bool Stamp { get; init; }

    /// <summary>Parses every token after each <c>/scenario</c> marker; unknown tokens are errors.</summary>
    public static Scenario Parse(string? text, Scenario defaults, out string? error)
    {
        error = null;
        var scenario = defaults;
        if (string.IsNullOrWhiteSpace(text))
        {
            return scenario;
        }

        foreach (var line in text.Split('\n'))
        {
            var trimmed = line.Trim();
            var at = trimmed.IndexOf("/scenario", StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }

            foreach (var token in trimmed[(at + "/scenario".Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                var colon = token.IndexOf(':');
                var name = colon < 0 ? token : token[..colon];
                var arg = colon < 0 ? null : token[(colon + 1)..];
                int Number(int fallback) => arg is not null && int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : fallback;
                switch (name)
                {
                    case "deltas": scenario = scenario with { Deltas = Number(scenario.Deltas) }; break;
                    case "delta-bytes": scenario = scenario with { DeltaBytes = Number(0) }; break;
                    case "reasoning": scenario = scenario with { ReasoningDeltas = Number(3) }; break;
                    case "search": scenario = scenario with { WebSearch = true }; break;
                    case "artifact": scenario = scenario with { Artifact = arg ?? "code" }; break;
                    case "pace": scenario = scenario with { PaceMs = Number(0) }; break;
                    case "drop": scenario = scenario with { DropAfter = Number(1) }; break;
                    case "stall": scenario = scenario with { StallAfter = Number(1) }; break;
                    case "end": scenario = scenario with { EndAfter = Number(1) }; break;
                    case "done-early": scenario = scenario with { DoneAfter = Number(1) }; break;
                    case "half": scenario = scenario with { HalfAfter = Number(1) }; break;
                    case "gate" when arg == "headers": scenario = scenario with { GateBeforeHeaders = true }; break;
                    case "gate": scenario = scenario with { GateAfter = Number(1) }; break;
                    case "stream-error": scenario = scenario with { StreamErrorAfter = Number(1) }; break;
                    case "stream-error-finish": scenario = scenario with { StreamErrorThenFinishAfter = Number(1) }; break;
                    // The service says its save failed only when appendMessage failed: the probe sees no message either.
                    case "persist-error": scenario = scenario with { PersistenceError = true, SaveFails = true }; break;
                    case "resume-error": scenario = scenario with { ResumeError = true }; break;
                    case "ack" when arg is "saved" or "failed": scenario = scenario with { InBandAck = arg, SaveFails = scenario.SaveFails || arg == "failed" }; break;
                    case "callback" when arg is "saved" or "failed": scenario = scenario with { CallbackAck = arg, SaveFails = scenario.SaveFails || arg == "failed" }; break;
                    case "callback-early" when arg is "saved" or "failed": scenario = scenario with { CallbackAck = arg, CallbackEarly = true, SaveFails = scenario.SaveFails || arg == "failed" }; break;
                    case "ack-delay": scenario = scenario with { AckDelayMs = Number(0) }; break;
                    case "save" when arg == "failed": scenario = scenario with { SaveFails = true }; break;
                    case "saved-after": scenario = scenario with { SavedAfterMs = Number(0) }; break;
                    case "error" when arg is not null && ErrorShapes.IsKnown(arg): scenario = scenario with { ErrorBody = arg }; break;
                    case "crlf": scenario = scenario with { Crlf = true }; break;
                    case "stamp": scenario = scenario with { Stamp = true }; break;
                    case "chunk": scenario = scenario with { ChunkBytes = Math.Max(1, Number(1)) }; break;
                    case "malformed" when arg == "no-final-blank": scenario = scenario with { NoFinalBlankLine = true }; break;
                    case "malformed" when arg == "bad-json": scenario = scenario with { BadJson = true }; break;
                    case "malformed" when arg?.StartsWith("long-line", StringComparison.Ordinal) == true:
                        scenario = scenario with { LongLineBytes = ParseSuffix(arg, 1_000_000) };
                        break;
                    case "malformed" when arg?.StartsWith("binary", StringComparison.Ordinal) == true:
                        scenario = scenario with { BinaryBytes = ParseSuffix(arg, 4096) };
                        break;
                    default:
                        error = $"unknown scenario token '{token}'";
                        return scenario;
                }
            }
        }

        return scenario;
    }

    private static int ParseSuffix(string arg, int fallback)
    {
        var colon = arg.IndexOf(':');
        return colon > 0 && int.TryParse(arg.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : fallback;
    }
}
