using System.Text.Json;

namespace Sidecar.Tests.Common;

/// <summary>Reads how a stream ended, the way the browser client parses it.</summary>
internal static class Endings
{
    /// <summary>The data of every event of an SSE body, in order (ids, comments and blank lines dropped; LF or CRLF).</summary>
    public static List<string> Parts(string body)
    {
        var parts = new List<string>();
        foreach (var block in body.Replace("\r\n", "\n", StringComparison.Ordinal).Split("\n\n"))
        {
            var data = block.Split('\n').Where(l => l.StartsWith("data:", StringComparison.Ordinal)).Select(l => l[5..].TrimStart(' ')).ToList();
            if (data.Count > 0)
            {
                parts.Add(string.Join('\n', data));
            }
        }

        return parts;
    }

    /// <summary>The typed resume error (it has no reason of its own), then [DONE], end the parts.</summary>
    public static void AssertResumeUnavailableEnding(IReadOnlyList<string> parts)
    {
        Assert.Equal("[DONE]", parts[^1]);
        var errorText = JsonDocument.Parse(JsonDocument.Parse(parts[^2]).RootElement.GetProperty("errorText").GetString()!).RootElement;
        ErrorJson.AssertContractShape(errorText, "SERVICE_UNAVAILABLE", 503);
        Assert.Equal("resume", errorText.GetProperty("category").GetString());
        Assert.Equal("RESUME_UNAVAILABLE", errorText.GetProperty("errorCode").GetString());
    }

    /// <summary>
    /// Asserts that the stream ends with the sidecar's terminal parts: <c>data-finish</c> when an artifact
    /// was open, one <c>error</c> part of exactly the client's schema whose errorText is the contract's
    /// error JSON, then <c>[DONE]</c>, and nothing after. Returns the parsed errorText.
    /// </summary>
    public static JsonElement AssertErrorEnding(IReadOnlyList<string> parts, string type, string category, string reason, bool artifactClosed = false, string? messageId = null)
    {
        Assert.Equal("[DONE]", parts[^1]);
        var error = JsonDocument.Parse(parts[^2]).RootElement;
        Assert.Equal(["type", "errorText"], error.EnumerateObject().Select(p => p.Name));
        Assert.Equal("error", error.GetProperty("type").GetString());
        var errorText = JsonDocument.Parse(error.GetProperty("errorText").GetString()!).RootElement.Clone();
        ErrorJson.AssertContractShape(errorText, type, type switch { "TIMEOUT" => 504, "SERVICE_UNAVAILABLE" => 503, _ => 500 });
        Assert.Equal(category, errorText.GetProperty("category").GetString());
        Assert.Equal("recoverable", errorText.GetProperty("severity").GetString());
        var metadata = errorText.GetProperty("metadata");
        Assert.Equal(reason, metadata.GetProperty("reason").GetString());
        if (messageId is not null)
        {
            Assert.Equal(messageId, metadata.GetProperty("messageId").GetString());
        }

        Assert.Equal(1, parts.Count(p => p.StartsWith("{\"type\":\"error\"", StringComparison.Ordinal)));
        if (artifactClosed)
        {
            Assert.Equal("{\"type\":\"data-finish\",\"data\":null,\"transient\":true}", parts[^3]);
        }

        return errorText;
    }
}
