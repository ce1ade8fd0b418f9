using System.Diagnostics;
using System.Text.Json;

namespace Sidecar.Tests.Common;

/// <summary>
/// Runs the real AI SDK v5 browser chat client (npm <c>ai</c>, pinned in
/// <c>ClientConformance/client</c>) under Node against a chat URL, and reports how it ended.
/// </summary>
internal static class RealClient
{
    public sealed record Result(string Status, JsonElement? Error, JsonElement? Assistant, IReadOnlyList<JsonElement> Data)
    {
        public IEnumerable<string> PartTypes =>
            Assistant?.GetProperty("parts").EnumerateArray().Select(p => p.GetProperty("type").GetString()!) ?? [];

        public string Text => string.Concat(Assistant?.GetProperty("parts").EnumerateArray()
            .Where(p => p.GetProperty("type").GetString() == "text")
            .Select(p => p.GetProperty("text").GetString()) ?? []);
    }

    /// <param name="bearer">A bearer token to send (a signed-in user), or null (anonymous).</param>
    public static async Task<Result> SendAsync(Uri chatUrl, string sessionId, string text, string? bearer = null)
    {
        var directory = Path.Combine(Loopback.RepositoryRoot(), "src", "Sidecar.Tests", "ClientConformance", "client");
        Assert.True(Directory.Exists(Path.Combine(directory, "node_modules", "ai")), $"run 'npm ci' in {directory} (scripts/test.sh does)");
        var info = new ProcessStartInfo("node") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("chat.mjs");
        info.ArgumentList.Add(chatUrl.ToString());
        info.ArgumentList.Add(sessionId);
        info.ArgumentList.Add(text);
        if (bearer is not null)
        {
            info.ArgumentList.Add(bearer);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().DefaultTimeout();
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        Assert.True(process.ExitCode == 0, $"node exited {process.ExitCode}: {await stderr}");
        using var document = JsonDocument.Parse(await stdout);
        var root = document.RootElement.Clone();
        return new Result(
            root.GetProperty("status").GetString()!,
            root.GetProperty("error").ValueKind == JsonValueKind.Null ? null : root.GetProperty("error"),
            root.GetProperty("assistant").ValueKind == JsonValueKind.Null ? null : root.GetProperty("assistant"),
            [.. root.GetProperty("data").EnumerateArray()]);
    }
}
