using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace ChatUpstream;

/// <summary>
/// An emulator of the c010 chat route (POST and GET <c>/api/v/{agentId}/{sessionId}</c>) and a
/// few pass-through paths, following <c>c010-contract.md</c>.
/// </summary>
public static class EmulatorApp
{
    public const string ScenarioHeader = "x-emulator-scenario";

    public static WebApplication Create(string[] args, Action<EmulatorOptions>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddOptions<EmulatorOptions>().BindConfiguration("Emulator");
        if (configure is not null)
        {
            builder.Services.PostConfigure(configure);
        }

        builder.Services.AddSingleton<EmulatorJournal>();
        builder.Services.AddSingleton<QuotaLedger>();
        builder.Services.TryAddTimeProvider();
        // The route checks the contract's limit itself, so that it can answer with its own error body.
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = 16 * 1024 * 1024);

        var app = builder.Build();
        app.MapPost("/api/v/{agentId}/{sessionId}", PostChatAsync);
        app.MapGet("/api/v/{agentId}/{sessionId}", GetResume);
        app.MapMethods("/api/v/{**rest}", ["GET", "POST"], InvalidPath);
        app.MapGet("/", () => Results.Content("<!doctype html><html><head><title>c010</title></head><body><h1>c010 chat (emulator)</h1></body></html>", "text/html; charset=utf-8"));
        app.MapMethods("/api/trpc/{**procedure}", ["GET", "POST"], Echo);
        app.MapMethods("/__emulator/echo/{**path}", ["GET", "POST", "PUT", "DELETE", "PATCH"], Echo);
        app.MapGet("/api/internal/messages/{sessionId}/{messageId}", (string sessionId, string messageId, EmulatorJournal journal, TimeProvider time) =>
            journal.Find(messageId) is { } record && record.SessionId == sessionId && record.IsSaved(time.GetTimestamp())
                ? Results.Json(new { id = messageId, sessionId, role = "assistant" })
                : Results.NotFound());
        app.MapPost("/api/internal/messages/{sessionId}", SaveMessageAsync);
        app.MapPost("/reservations/{id}/{action}", SettleReservationAsync);
        app.MapGet("/reservations", ListReservationsAsync);
        app.MapPost("/__emulator/release/{messageId}", (string messageId, EmulatorJournal journal) =>
        {
            if (journal.Find(messageId) is not { } record)
            {
                return Results.NotFound();
            }

            record.ReleaseGate();
            return Results.NoContent();
        });
        // Test control: the quota API goes down (every call 503) and comes back.
        app.MapPost("/__emulator/quota/{state}", (string state, QuotaLedger ledger) =>
        {
            if (state is not ("down" or "up"))
            {
                return Results.NotFound();
            }

            ledger.Down = state == "down";
            return Results.NoContent();
        });
        return app;
    }

    private static void TryAddTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
        {
            services.AddSingleton(TimeProvider.System);
        }
    }

    /// <summary>The service's save of an assistant message (what a save repair submits): <c>{sessionId, message}</c>.</summary>
    private static async Task<IResult> SaveMessageAsync(HttpContext context, string sessionId, EmulatorJournal journal, TimeProvider time)
    {
        using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
        if (!document.RootElement.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.Object
            || !message.TryGetProperty("id", out var id) || id.GetString() is not { Length: > 0 } messageId
            || !message.TryGetProperty("parts", out var parts) || parts.ValueKind != JsonValueKind.Array)
        {
            return Results.Json(new { error = "Expected {sessionId, message: {id, role, parts}}" }, statusCode: 400);
        }

        journal.Find(messageId)?.SavedAt(time.GetTimestamp());
        journal.SaveMessage(messageId, message.GetRawText());
        return Results.Json(new { id = messageId, sessionId }, statusCode: 201);
    }

    private static async Task<IResult> SettleReservationAsync(HttpContext context, string id, string action, QuotaLedger ledger, IOptions<EmulatorOptions> options, TimeProvider time)
    {
        if (QuotaCallRefused(context, ledger, options.Value) is { } refused)
        {
            return refused;
        }

        if (options.Value.QuotaLatencyMs > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(options.Value.QuotaLatencyMs), time, context.RequestAborted);
        }

        if (action is not ("confirm" or "release"))
        {
            return Results.NotFound();
        }

        if (ledger.Find(id) is not { } reservation)
        {
            return Results.Json(new { error = "Reservation not found" }, statusCode: 404);
        }

        var (changed, status) = reservation.Settle(action == "confirm" ? "confirmed" : "released", "sidecar");
        return Results.Json(new { status }, statusCode: changed ? 200 : 409);
    }

    private static async Task<IResult> ListReservationsAsync(HttpContext context, string? status, long? olderThanMs, QuotaLedger ledger, IOptions<EmulatorOptions> options, TimeProvider time)
    {
        if (QuotaCallRefused(context, ledger, options.Value) is { } refused)
        {
            return refused;
        }

        if (options.Value.QuotaLatencyMs > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(options.Value.QuotaLatencyMs), time, context.RequestAborted);
        }

        var now = time.GetUtcNow();
        var list = ledger.All
            .Where(r => status is null || r.Status == status)
            .Where(r => olderThanMs is null || (now - r.CreatedAt).TotalMilliseconds >= olderThanMs)
            .OrderBy(r => r.CreatedAt)
            .Select(r => new { id = r.Id, status = r.Status, createdAt = r.CreatedAt.ToUnixTimeMilliseconds(), settlements = r.Settlements, settledBy = r.SettledBy });
        return Results.Json(list);
    }

    /// <summary>A wrong service token (401), or a failure on purpose (503); null lets the call through.</summary>
    private static IResult? QuotaCallRefused(HttpContext context, QuotaLedger ledger, EmulatorOptions o)
    {
        if (o.QuotaServiceToken is { } token && context.Request.Headers.Authorization.ToString() != "Bearer " + token)
        {
            return Results.Json(new { error = "Unauthorized" }, statusCode: 401);
        }

        return ledger.NextCallFails(o.QuotaFailureRate) ? Results.Json(new { error = "Quota store unavailable" }, statusCode: 503) : null;
    }

    /// <summary>The service's own release after an error (contract section 7): 3 tries, fire-and-forget, racing the confirm.</summary>
    private static void SelfRelease(Reservation reservation, TimeProvider time) =>
        _ = Task.Run(async () =>
        {
            for (var attempt = 1; attempt <= 3; attempt++)
            {
                if (reservation.Settle("released", "service").Changed)
                {
                    return;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), time);
            }
        });

    private static async Task PostChatAsync(HttpContext context, string agentId, string sessionId, EmulatorJournal journal, IOptions<EmulatorOptions> options, TimeProvider time, QuotaLedger ledger)
    {
        var o = options.Value;
        var request = context.Request;
        var messageId = NewId();
        var requestId = Guid.NewGuid().ToString();
        var info = new RequestInfo(requestId, sessionId, ResourceId(request, sessionId), Timestamp(time));
        var response = context.Response;
        response.Headers["x-request-id"] = requestId;
        response.Headers["x-session-id"] = sessionId;
        response.Headers["x-agent-id"] = agentId;
        response.Headers["x-message-id"] = messageId;

        if (agentId != "c010")
        {
            await ErrorAsync(context, 400, ErrorShapes.Guard(info, "INVALID_REQUEST", "Invalid request", $"Unknown agent '{agentId}'.", 400, "INVALID_AGENT"));
            return;
        }

        var (text, failure) = await ReadUserTextAsync(request, o.MaxRequestBodyBytes, context.RequestAborted);
        if (failure is { } f)
        {
            await ErrorAsync(context, f.Status, ErrorShapes.Guard(info, f.Type, f.Title, f.Message, f.Status, f.Code));
            return;
        }

        var defaults = new Scenario { PaceMs = o.DefaultPaceMs, Deltas = o.DefaultDeltas };
        var scenarioText = request.Headers[ScenarioHeader].ToString() + "\n" + text;
        var scenario = Scenario.Parse(scenarioText, defaults, out var scenarioError);
        if (scenarioError is not null)
        {
            await ErrorAsync(context, 400, ErrorShapes.Guard(info, "INVALID_REQUEST", "Invalid request", scenarioError, 400, "INVALID_SCENARIO"));
            return;
        }

        if (scenario.ErrorBody is { } kind)
        {
            var (status, body) = ErrorShapes.Create(kind, info);
            if (kind == "gzip")
            {
                // A compressed error body, as some stacks send: it must pass unparsed.
                context.Response.StatusCode = status;
                context.Response.ContentType = "application/json";
                context.Response.Headers.ContentEncoding = "gzip";
                using var compressed = new MemoryStream();
                await using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
                {
                    await gzip.WriteAsync(Encoding.UTF8.GetBytes(body));
                }

                await context.Response.Body.WriteAsync(compressed.ToArray());
                return;
            }

            await ErrorAsync(context, status, body, ErrorShapes.ContentType(kind));
            return;
        }

        // A signed-in user's POST that passed the guards reserves quota, keyed by the assistant message id.
        var reservation = IsSignedIn(request) ? ledger.Reserve(messageId, time.GetUtcNow()) : null;
        var frames = AnswerScript.Build(scenario, messageId, info);
        var headers = request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
        var record = new AnswerRecord(messageId, sessionId, headers, frames.Count);
        journal.Add(record);
        if (o.ResumableStreams)
        {
            record.KeepForResume();
            journal.Started(record);
        }

        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers.Connection = "keep-alive";
        response.Headers.ContentEncoding = "none";
        response.Headers["x-vercel-ai-ui-message-stream"] = "v1";
        response.Headers["x-accel-buffering"] = "no";
        response.Headers.SetCookie = $"c010_last_session={sessionId}; Path=/; HttpOnly; SameSite=Lax";
        if (reservation is not null && o.SelfSettle)
        {
            // The handler has answered: confirm now, as the real route does (its call is
            // fire-and-forget; here it lands before the first part, so the race is reproducible).
            reservation.Settle("confirmed", "service");
        }

        var ended = AnswerStatus.EndedEarly;
        try
        {
            ended = await StreamAsync(context, scenario, frames, record, info, journal.RecordBodies, o, time);
            if (reservation is not null && o.SelfSettle && (ended != AnswerStatus.Completed || scenario.StreamErrorAfter is not null || scenario.PersistenceError))
            {
                // An error mid-stream: release, which mostly loses the race with the confirm.
                SelfRelease(reservation, time);
            }
        }
        finally
        {
            // Whatever ended the answer (a failed callback too), resumes stop following it.
            journal.Finished(record);
            record.EndReplay();
            record.End(ended);
        }
    }

    private static bool IsSignedIn(HttpRequest request) =>
        request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.Ordinal) || request.Cookies.ContainsKey("__session");

    private static async Task<AnswerStatus> StreamAsync(HttpContext context, Scenario s, List<byte[]> frames, AnswerRecord record, RequestInfo info, bool recordBodies, EmulatorOptions o, TimeProvider time)
    {
        var aborted = context.RequestAborted;
        var body = context.Response.Body;
        try
        {
            if (s.GateBeforeHeaders)
            {
                await record.WaitAtGateAsync(aborted);
            }

            // Headers go out before the first part (StartAsync alone only queues them).
            await context.Response.StartAsync(aborted);
            await body.FlushAsync(aborted);
            for (var i = 0; i < frames.Count; i++)
            {
                if (i > 0 && s.PaceMs > 0)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(s.PaceMs), time, aborted);
                }

                if (i == s.GateAfter)
                {
                    await record.WaitAtGateAsync(aborted);
                }

                if (i == s.DropAfter)
                {
                    context.Abort();
                    return AnswerStatus.Dropped;
                }

                if (i == s.StallAfter)
                {
                    record.MarkStalled();
                    await Task.Delay(o.StallLimit, time, aborted);
                    return AnswerStatus.StalledThenAbandoned;
                }

                if (i == s.DoneAfter)
                {
                    // As an AI SDK stream closed without finish does: [DONE], then the end.
                    await WriteAsync(body, AnswerScript.Done(s.Crlf), s.ChunkBytes, record, recordBodies, aborted);
                    return AnswerStatus.EndedEarly;
                }

                if (i == s.EndAfter)
                {
                    return AnswerStatus.EndedEarly;
                }

                if (i == s.HalfAfter)
                {
                    await WriteAsync(body, frames[i][..(frames[i].Length / 2)], s.ChunkBytes, record, recordBodies, aborted);
                    return AnswerStatus.EndedEarly;
                }

                var isFinish = frames[i].AsSpan().IndexOf("{\"type\":\"finish\"}"u8) >= 0;
                if (isFinish && s.CallbackAck is not null && s.CallbackEarly)
                {
                    await PostCallbackAsync(s, record, o, time, aborted);
                }

                if (s.AckDelayMs > 0 && s.InBandAck is not null && frames[i].AsSpan().IndexOf("\"type\":\"data-persistence\""u8) >= 0)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(s.AckDelayMs), time, aborted);
                }

                if (i == s.StreamErrorThenFinishAfter)
                {
                    // As some providers do: the error, then finish anyway, then [DONE].
                    await WriteAsync(body, AnswerScript.StreamError(record.MessageId, info, s.Crlf), s.ChunkBytes, record, recordBodies, aborted);
                    await WriteAsync(body, Encoding.UTF8.GetBytes("data: {\"type\":\"finish\"}" + (s.Crlf ? "\r\n\r\n" : "\n\n")), s.ChunkBytes, record, recordBodies, aborted);
                    await WriteAsync(body, AnswerScript.Done(s.Crlf), s.ChunkBytes, record, recordBodies, aborted);
                    return AnswerStatus.EndedEarly;
                }

                if (i == s.StreamErrorAfter)
                {
                    await WriteAsync(body, AnswerScript.StreamError(record.MessageId, info, s.Crlf), s.ChunkBytes, record, recordBodies, aborted);
                    await WriteAsync(body, AnswerScript.Done(s.Crlf), s.ChunkBytes, record, recordBodies, aborted);
                    return AnswerStatus.EndedEarly;
                }

                await WriteAsync(body, s.Stamp ? Stamped(frames[i]) : frames[i], s.ChunkBytes, record, recordBodies, aborted);
                if (isFinish)
                {
                    // The service appends the assistant message once the model has finished.
                    if (!s.SaveFails)
                    {
                        record.SavedAt(time.GetTimestamp() + (long)(s.SavedAfterMs * time.TimestampFrequency / 1000.0));
                    }

                    if (s.CallbackAck is not null && !s.CallbackEarly)
                    {
                        await PostCallbackAsync(s, record, o, time, aborted);
                    }
                }
            }

            if (s.StallAfter == frames.Count)
            {
                // The whole answer is out, but the connection stays open and silent.
                record.MarkStalled();
                await Task.Delay(o.StallLimit, time, aborted);
                return AnswerStatus.StalledThenAbandoned;
            }

            return AnswerStatus.Completed;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            return s.StallAfter is not null && record.FramesSent >= s.StallAfter ? AnswerStatus.StalledThenAbandoned : AnswerStatus.ReaderGone;
        }
    }

    /// <summary>
    /// For the benchmarks: a text delta whose text is the moment it is written (the machine's
    /// monotonic clock, comparable across processes), padded to the frame's length.
    /// </summary>
    private static byte[] Stamped(byte[] frame)
    {
        if (frame.AsSpan().IndexOf("\"type\":\"text-delta\""u8) < 0)
        {
            return frame;
        }

        var stamp = System.Diagnostics.Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture);
        var prefix = "data: {\"type\":\"text-delta\",\"id\":\"txt_0\",\"delta\":\"t" + stamp + " ";
        var suffix = "\"}\n\n";
        var padding = Math.Max(0, frame.Length - prefix.Length - suffix.Length);
        return Encoding.UTF8.GetBytes(prefix + new string('x', padding) + suffix);
    }

    /// <summary>Tells the sidecar whether the answer was saved, as the service would after appendMessage.</summary>
    private static async Task PostCallbackAsync(Scenario s, AnswerRecord record, EmulatorOptions o, TimeProvider time, CancellationToken token)
    {
        if (s.AckDelayMs > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(s.AckDelayMs), time, token);
        }

        if (o.AckCallbackUrl is null)
        {
            return;
        }

        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, o.AckCallbackUrl.Replace("{messageId}", record.MessageId, StringComparison.Ordinal))
        {
            Content = new StringContent(s.CallbackAck == "saved" ? "{\"status\":\"saved\"}" : "{\"status\":\"failed\",\"error\":\"appendMessage failed\"}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", o.AckCallbackToken);
        using var response = await http.SendAsync(request, token);
        record.CallbackStatus = (int)response.StatusCode;
    }

    private static async Task WriteAsync(Stream body, byte[] frame, int chunkBytes, AnswerRecord record, bool recordBodies, CancellationToken token)
    {
        record.FrameSent(frame, recordBodies);
        if (chunkBytes <= 0)
        {
            await body.WriteAsync(frame, token);
            await body.FlushAsync(token);
        }
        else
        {
            for (var offset = 0; offset < frame.Length; offset += chunkBytes)
            {
                await body.WriteAsync(frame.AsMemory(offset, Math.Min(chunkBytes, frame.Length - offset)), token);
                await body.FlushAsync(token);
            }
        }

        record.FrameCompleted();
    }

    /// <summary>
    /// Resume as the service does it: while the session's answer runs, 200 with a full replay from
    /// its first byte, then its live parts to its end; otherwise 204 with only Cache-Control.
    /// </summary>
    private static async Task GetResume(HttpContext context, string agentId, string sessionId, EmulatorJournal journal, TimeProvider time)
    {
        if (agentId != "c010")
        {
            var info = new RequestInfo(Guid.NewGuid().ToString(), sessionId, string.Empty, Timestamp(time));
            await ErrorAsync(context, 400, ErrorShapes.Guard(info, "INVALID_REQUEST", "Invalid request", $"Unknown agent '{agentId}'.", 400, "INVALID_AGENT"));
            return;
        }

        var response = context.Response;
        if (journal.Running(sessionId) is not { } record || !record.OpenReplay())
        {
            response.StatusCode = 204;
            response.Headers.CacheControl = "no-cache";
            return;
        }

        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers.Connection = "keep-alive";
        response.Headers.ContentEncoding = "none";
        response.Headers["x-request-id"] = Guid.NewGuid().ToString();
        response.Headers["x-session-id"] = sessionId;
        response.Headers["x-agent-id"] = agentId;
        response.Headers["x-message-id"] = record.MessageId;
        var token = context.RequestAborted;
        var offset = 0;
        try
        {
            while (true)
            {
                var (bytes, more) = record.ReplayFrom(offset);
                if (bytes.Length > 0)
                {
                    offset += bytes.Length;
                    await response.Body.WriteAsync(bytes, token);
                    await response.Body.FlushAsync(token);
                    continue;
                }

                if (record.Ended.IsCompleted)
                {
                    // The last frames may have gone out between the read above and the end.
                    var (rest, _) = record.ReplayFrom(offset);
                    await response.Body.WriteAsync(rest, token);
                    return;
                }

                await Task.WhenAny(more, record.Ended).WaitAsync(token);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The client left.
        }
        finally
        {
            record.CloseReplay();
        }
    }

    private static async Task InvalidPath(HttpContext context, TimeProvider time)
    {
        var info = new RequestInfo(Guid.NewGuid().ToString(), string.Empty, string.Empty, Timestamp(time));
        await ErrorAsync(context, 400, ErrorShapes.Guard(info, "INVALID_REQUEST", "Invalid request", "Invalid path: expected /api/v/{agentId}/{sessionId}.", 400, "INVALID_PATH"));
    }

    private static IResult Echo(HttpContext context, EmulatorJournal journal)
    {
        var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
        journal.OtherRequests.Enqueue((context.Request.Method, context.Request.Path.Value ?? "/", headers));
        return Results.Json(new { method = context.Request.Method, path = context.Request.Path.Value, query = context.Request.QueryString.Value, headers });
    }

    private static async Task ErrorAsync(HttpContext context, int status, string json, string contentType = "application/json")
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = contentType;
        await context.Response.WriteAsync(json, context.RequestAborted);
    }

    private sealed record BodyFailure(int Status, string Type, string Title, string Message, string Code);

    private static async Task<(string? Text, BodyFailure? Failure)> ReadUserTextAsync(HttpRequest request, long limit, CancellationToken token)
    {
        if (request.ContentLength > limit)
        {
            return (null, TooLarge(limit));
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, token)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limit)
            {
                return (null, TooLarge(limit));
            }
        }

        try
        {
            using var document = JsonDocument.Parse(buffer.ToArray());
            if (!document.RootElement.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            {
                return (null, Invalid("The request must contain at least one message."));
            }

            var last = messages[messages.GetArrayLength() - 1];
            if (!last.TryGetProperty("role", out var role) || role.GetString() != "user")
            {
                return (null, Invalid("The last message must be from the user."));
            }

            var text = new StringBuilder();
            if (last.TryGetProperty("parts", out var parts) && parts.ValueKind == JsonValueKind.Array)
            {
                foreach (var part in parts.EnumerateArray())
                {
                    if (part.TryGetProperty("type", out var type) && type.GetString() == "text" && part.TryGetProperty("text", out var t))
                    {
                        text.Append(t.GetString()).Append('\n');
                    }
                }
            }

            return (text.ToString(), null);
        }
        catch (JsonException)
        {
            return (null, Invalid("The request body is not valid JSON."));
        }
        catch (InvalidOperationException)
        {
            // A field of the wrong JSON type (a number where a string belongs).
            return (null, Invalid("The request body does not have the expected shape."));
        }

        static BodyFailure TooLarge(long limit) => new(413, "PAYLOAD_TOO_LARGE", "Payload too large", $"The request body exceeds {limit} bytes.", "PAYLOAD_TOO_LARGE");
        static BodyFailure Invalid(string message) => new(400, "INVALID_REQUEST", "Invalid request", message, "INVALID_BODY");
    }

    private static string ResourceId(HttpRequest request, string sessionId)
    {
        var credential = request.Headers.Authorization.ToString() is { Length: > 7 } auth && auth.StartsWith("Bearer ", StringComparison.Ordinal)
            ? auth[7..]
            : request.Cookies["__session"];
        return credential is null ? $"anon_{sessionId}" : "user_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(credential)))[..16];
    }

    private static string NewId()
    {
        const string alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        return RandomNumberGenerator.GetString(alphabet, 16);
    }

    private static string Timestamp(TimeProvider time) =>
        time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
