using System.Text.Json;

namespace Sidecar.Tests.Common;

/// <summary>Checks the contract's error shape (section 5) the way the browser client reads it.</summary>
internal static class ErrorJson
{
    public static async Task<JsonElement> ReadAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync().DefaultTimeout());
        return document.RootElement.Clone();
    }

    public static void AssertContractShape(JsonElement error, string type, int status)
    {
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(status, error.GetProperty("statusCode").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("error").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal("sidecar", error.GetProperty("source").GetString());
        var timestamp = error.GetProperty("metadata").GetProperty("timestamp").GetString();
        Assert.True(DateTimeOffset.TryParse(timestamp, System.Globalization.CultureInfo.InvariantCulture, out _), timestamp);
        string[] allowed = ["type", "error", "message", "statusCode", "errorCode", "source", "category", "severity", "metadata"];
        Assert.All(error.EnumerateObject(), p => Assert.Contains(p.Name, allowed));
    }
}
