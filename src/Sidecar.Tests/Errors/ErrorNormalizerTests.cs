using System.Text;
using System.Text.Json;
using Sidecar.Errors;

namespace Sidecar.Tests.Errors;

public class ErrorNormalizerTests
{
    private const string Timestamp = "2026-11-24T12:00:00.000Z";
    private readonly ErrorNormalizationOptions _options = new();

    [Theory]
    [InlineData("QUOTA_RESERVATION_ERROR", 402, "USAGE_LIMIT_EXCEEDED", "quota")]
    [InlineData("MODEL_NOT_ALLOWED", 403, "MODEL_ACCESS_DENIED", "access")]
    [InlineData("FEATURE_NOT_ALLOWED", 403, "MODEL_ACCESS_DENIED", "access")]
    [InlineData("INTERNAL_ERROR", 500, "SERVER_ERROR", "server")]
    public void BillingShape_IsClassifiedByItsCode_KeepingItsFieldsAndStatus(string code, int status, string type, string category)
    {
        var body = "{\"error\":\"Usage limit exceeded\",\"message\":\"You have reached your limit.\",\"code\":\"" + code + "\",\"details\":{\"userId\":\"u1\"}}";

        var error = Parse(ErrorNormalizer.Normalize(status, Encoding.UTF8.GetBytes(body), _options, "req-1", "s1", Timestamp));

        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(status, error.GetProperty("statusCode").GetInt32());
        Assert.Equal("Usage limit exceeded", error.GetProperty("error").GetString());
        Assert.Equal("You have reached your limit.", error.GetProperty("message").GetString());
        Assert.Equal(code, error.GetProperty("errorCode").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal("u1", error.GetProperty("details").GetProperty("userId").GetString());
        Assert.Equal(category, error.GetProperty("category").GetString());
        Assert.Equal("recoverable", error.GetProperty("severity").GetString());
        Assert.Equal("billing", error.GetProperty("source").GetString());
        Assert.Equal(Timestamp, error.GetProperty("metadata").GetProperty("timestamp").GetString());
        Assert.Equal("req-1", error.GetProperty("metadata").GetProperty("requestId").GetString());
        Assert.Equal("s1", error.GetProperty("metadata").GetProperty("sessionId").GetString());
    }

    [Fact]
    public void MemoryShape_GainsSourceCategorySeverityAndATopLevelErrorCode_AndKeepsItsMetadata()
    {
        const string body = """{"type":"SERVER_ERROR","error":"MemoryError","message":"Memory store unavailable","statusCode":500,"metadata":{"timestamp":"2026-01-01T00:00:00.000Z","errorCode":"MEMORY_ERROR","sessionId":"s9","resourceId":"user_1"}}""";

        var error = Parse(ErrorNormalizer.Normalize(500, Encoding.UTF8.GetBytes(body), _options, "req-1", "s1", Timestamp));

        Assert.Equal("SERVER_ERROR", error.GetProperty("type").GetString());
        Assert.Equal("MEMORY_ERROR", error.GetProperty("errorCode").GetString());
        Assert.Equal("server", error.GetProperty("source").GetString());
        Assert.Equal("server", error.GetProperty("category").GetString());
        Assert.Equal("recoverable", error.GetProperty("severity").GetString());
        var metadata = error.GetProperty("metadata");
        Assert.Equal("2026-01-01T00:00:00.000Z", metadata.GetProperty("timestamp").GetString());
        Assert.Equal("s9", metadata.GetProperty("sessionId").GetString());
        Assert.Equal("user_1", metadata.GetProperty("resourceId").GetString());
        Assert.Equal("MEMORY_ERROR", metadata.GetProperty("errorCode").GetString());
    }

    [Fact]
    public void FieldsAlreadyPresent_AreNeverOverwritten()
    {
        const string body = """{"type":"INVALID_REQUEST","error":"E","message":"M","statusCode":418,"errorCode":"MINE","source":"custom","category":"cat","severity":"fatal","metadata":{"timestamp":"t","requestId":"r","sessionId":"s"}}""";

        var normalized = ErrorNormalizer.Normalize(400, Encoding.UTF8.GetBytes(body), _options, "req-1", "s1", Timestamp);

        // Complete already: left byte for byte.
        Assert.Null(normalized);
    }

    [Fact]
    public void GuardShape_IsCompleteAndPassesUnchanged()
    {
        const string body = """{"type":"RATE_LIMIT","error":"Rate limit exceeded","message":"Too many requests.","statusCode":429,"errorCode":"RATE_LIMIT_EXCEEDED","source":"guard","metadata":{"timestamp":"t","requestId":"r","sessionId":"s"}}""";

        var normalized = ErrorNormalizer.Normalize(429, Encoding.UTF8.GetBytes(body), _options, "req-1", "s", Timestamp);

        // Typed, with a source: the full shape (category and severity are optional).
        Assert.Null(normalized);
    }

    [Theory]
    [InlineData(500, "<!DOCTYPE html><html><body>500</body></html>")]
    [InlineData(500, "")]
    [InlineData(500, "Service Unavailable")]
    [InlineData(500, "[1,2,3]")]
    [InlineData(500, "\"just a string\"")]
    [InlineData(500, "{\"truncated\":")]
    public void NonJsonOrNonObjectBody_BecomesATypedServerErrorWithTheStatusKept(int status, string body)
    {
        var error = Parse(ErrorNormalizer.Normalize(status, Encoding.UTF8.GetBytes(body), _options, "req-1", "s1", Timestamp));

        Assert.Equal("SERVER_ERROR", error.GetProperty("type").GetString());
        Assert.Equal(status, error.GetProperty("statusCode").GetInt32());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("error").GetString()));
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal("upstream", error.GetProperty("source").GetString());
        Assert.Equal("req-1", error.GetProperty("metadata").GetProperty("requestId").GetString());
    }

    [Theory]
    [InlineData(429, "RATE_LIMIT")]
    [InlineData(401, "AUTHENTICATION")]
    [InlineData(413, "PAYLOAD_TOO_LARGE")]
    [InlineData(503, "SERVICE_UNAVAILABLE")]
    [InlineData(504, "TIMEOUT")]
    [InlineData(500, "SERVER_ERROR")]
    public void UntypedBodyFromAnIngress_IsTypedByItsStatus(int status, string type)
    {
        var error = Parse(ErrorNormalizer.Normalize(status, "<html><body>nginx</body></html>"u8, _options, null, null, Timestamp));

        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(status, error.GetProperty("statusCode").GetInt32());
    }

    [Fact]
    public void DuplicateKeys_AreTreatedAsAnUnreadableBody_NotAnException()
    {
        var error = Parse(ErrorNormalizer.Normalize(500, """{"type":"A","type":"B"}"""u8, _options, null, null, Timestamp));

        Assert.Equal("SERVER_ERROR", error.GetProperty("type").GetString());
    }

    [Fact]
    public void NormalizedBody_EscapesOnlyWhatJsonNeeds()
    {
        var body = ErrorNormalizer.Normalize(402, """{"error":"Limit","message":"You can't <send> more","code":"QUOTA_RESERVATION_ERROR"}"""u8, _options, null, null, Timestamp);

        Assert.Contains("You can't <send> more", Encoding.UTF8.GetString(body!), StringComparison.Ordinal);
    }

    [Fact]
    public void ObjectWithOnlyAMessage_GetsTheFallbackTypeAndTheHttpStatus()
    {
        var error = Parse(ErrorNormalizer.Normalize(500, """{"message":"down for maintenance"}"""u8, _options, null, null, Timestamp));

        Assert.Equal("SERVER_ERROR", error.GetProperty("type").GetString());
        Assert.Equal(500, error.GetProperty("statusCode").GetInt32());
        Assert.Equal("down for maintenance", error.GetProperty("message").GetString());
        Assert.Equal("down for maintenance", error.GetProperty("error").GetString());
        Assert.Equal(Timestamp, error.GetProperty("metadata").GetProperty("timestamp").GetString());
    }

    [Fact]
    public void CodesTable_IsConfigurable()
    {
        _options.Codes["TRIAL_ENDED"] = new ErrorMapping { Type = "USAGE_LIMIT_EXCEEDED", Category = "quota", Severity = "fatal", Source = "billing" };

        var error = Parse(ErrorNormalizer.Normalize(402, """{"error":"Trial ended","message":"Upgrade.","code":"TRIAL_ENDED"}"""u8, _options, null, null, Timestamp));

        Assert.Equal("USAGE_LIMIT_EXCEEDED", error.GetProperty("type").GetString());
        Assert.Equal("fatal", error.GetProperty("severity").GetString());
    }

    private static JsonElement Parse(byte[]? body)
    {
        Assert.NotNull(body);
        using var document = JsonDocument.Parse(body);
        return document.RootElement.Clone();
    }
}
