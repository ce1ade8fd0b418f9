using System.Buffers;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
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
