using System.Buffers;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ChatUpstream;
using Sidecar.Streams;

namespace Sidecar.Tests.Common;

/// <summary>Builds chat requests as the browser client sends them, and reads SSE replies.</summary>
internal static class Chat
{
    public static HttpRequestMessage Post(string sessionId, string text, string agentId = "c010")
    {
        var body = JsonSerializer.Serialize(new
        {
            messages = new[] { new { id = "u_" + sessionId, role = "user", parts = new[] { new { type = "text", text } } } },
            userMessageId = "u_" + sessionId,
            modelId = "gpt-test",
            webSearchEnabled = false,
        });
        return new HttpRequestMessage(HttpMethod.Post, $"/api/v/{agentId}/{sessionId}")
        {
            Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
    }

    /// <summary>The pump of a session's live stream, once it holds its finish for the save acknowledgment.</summary>
    public static async Task<StreamPump> HeldFinishAsync(this SidecarServer sidecar, string sessionId)
    {
        var pump = sidecar.Pumps.Active.Single(p => p.Exchange.SessionId == sessionId);
        await pump.Ack!.Started.DefaultTimeout();
        return pump;
    }

    /// <summary>A unique session id per test, so journal lookups never collide.</summary>
    public static string NewSession() => "s" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>Waits for the sidecar's pump of <paramref name="sessionId"/> to end, and returns its outcome.</summary>
    public static Task<(StreamPump Pump, StreamOutcome Outcome)> PumpEnded(this SidecarServer sidecar, string sessionId)
    {
        var ended = new TaskCompletionSource<(StreamPump, StreamOutcome)>(TaskCreationOptions.RunContinuationsAsynchronously);
        sidecar.Pumps.Ended += (pump, outcome) =>
        {
            if (pump.Exchange.SessionId == sessionId)
            {
                ended.TrySetResult((pump, outcome));
            }
        };
        return ended.Task;
    }

    public static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    /// <summary>A resume request, as the client sends it on page load.</summary>
    public static HttpRequestMessage Resume(string sessionId, string? lastEventId = null, string? bearer = null, string agentId = "c010")
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v/{agentId}/{sessionId}");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return request;
    }

    /// <summary>A stop-generating request for the session's active stream.</summary>
    public static HttpRequestMessage Stop(string sessionId, string? bearer = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Delete, $"/api/v/c010/{sessionId}");
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return request;
    }

    /// <summary>Splits an LF-framed SSE body into its events (each with its blank line).</summary>
    public static List<byte[]> Events(byte[] body)
    {
        var events = new List<byte[]>();
        var start = 0;
        for (var i = 1; i < body.Length; i++)
        {
            if (body[i] == (byte)'\n' && body[i - 1] == (byte)'\n')
            {
                events.Add(body[start..(i + 1)]);
                start = i + 1;
            }
        }

        if (start < body.Length)
        {
            events.Add(body[start..]);
        }

        return events;
    }

    /// <summary>The bytes the sidecar sends for these upstream events with event ids on: <c>id: N</c> before each.</summary>
    public static byte[] WithIds(IEnumerable<byte[]> events, long first = 0)
    {
        var output = new List<byte>();
        var id = first;
        foreach (var evt in events)
        {
            output.AddRange(Encoding.UTF8.GetBytes($"id: {id++}\n"));
            output.AddRange(evt);
        }

        return [.. output];
    }

    /// <summary>Posts a chat, reads its whole body, and returns it with the emulator's record of the answer.</summary>
    public static async Task<ChatAnswer> PostToEndAsync(HttpClient client, EmulatorServer emulator, string sessionId, string text)
    {
        var response = await client.SendAsync(Post(sessionId, text), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var body = await new TestEventReader(await response.Content.ReadAsStreamAsync()).ReadToEndAsync();
        var record = await emulator.Journal.ForSession(sessionId).DefaultTimeout();
        return new ChatAnswer(response, body, record);
    }

    /// <summary>Posts a chat through <paramref name="client"/> and returns once its headers are in, with the emulator's record of it.</summary>
    public static async Task<ChatCall> StartAsync(HttpClient client, EmulatorServer emulator, string sessionId, string text)
    {
        var response = await client.SendAsync(Post(sessionId, text), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var reader = new TestEventReader(await response.Content.ReadAsStreamAsync());
        var record = await emulator.Journal.ForSession(sessionId).DefaultTimeout();
        return new ChatCall(response, reader, record);
    }
}

/// <summary>A chat read to its end: the client's response and body, and the emulator's record of the answer.</summary>
internal sealed record ChatAnswer(HttpResponseMessage Response, byte[] Body, AnswerRecord Record) : IDisposable
{
    public void Dispose() => Response.Dispose();
}

/// <summary>A chat in flight: the client's response and reader, and the emulator's record of the answer.</summary>
internal sealed record ChatCall(HttpResponseMessage Response, TestEventReader Reader, AnswerRecord Record) : IDisposable
{
    public void Dispose() => Response.Dispose();
}

/// <summary>
/// A deliberately naive SSE reader for the tests (LF framing only), independent of the product's
/// reader, keeping every byte it read.
/// </summary>
internal sealed class TestEventReader(Stream body)
{
    private readonly ArrayBufferWriter<byte> _all = new();
    private readonly byte[] _chunk = new byte[64 * 1024];
    private int _consumed;

    public byte[] AllBytes => _all.WrittenSpan.ToArray();

    /// <summary>The next event's text (without its blank line), or null at the end of the body.</summary>
    public async Task<string?> NextAsync()
    {
        while (true)
        {
            var text = Encoding.UTF8.GetString(_all.WrittenSpan[_consumed..]);
            var end = text.IndexOf("\n\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                _consumed += Encoding.UTF8.GetByteCount(text.AsSpan(0, end + 2));
                return text[..end];
            }

            var read = await body.ReadAsync(_chunk).DefaultTimeout();
            if (read == 0)
            {
                return null;
            }

            _all.Write(_chunk.AsSpan(0, read));
        }
    }

    /// <summary>Reads to the end of the body and returns every byte read.</summary>
    public async Task<byte[]> ReadToEndAsync()
    {
        int read;
        while ((read = await body.ReadAsync(_chunk).DefaultTimeout()) > 0)
        {
            _all.Write(_chunk.AsSpan(0, read));
        }

        return AllBytes;
    }
}
