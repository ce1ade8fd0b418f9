using System.Text;

namespace ChatUpstream;

/// <summary>
/// The frames (SSE events, or raw bytes for the malformed scenarios) of one answer, in order, as
/// the c010 route would stream them for a scenario.
/// </summary>
public static class AnswerScript
{
    private static readonly string[] Words =
    [
        "Streaming", "answers", "arrive", "one", "part", "at", "a", "time,", "and", "the", "sidecar", "keeps",
        "every", "event", "so", "a", "reload", "can", "resume", "where", "it", "left", "off.", "Each", "delta",
        "carries", "a", "few", "words", "of", "the", "reply", "while", "the", "model", "thinks.",
    ];

    public static List<byte[]> Build(Scenario s, string messageId, RequestInfo request)
    {
        var parts = new List<string> { Parts.Start(messageId), Parts.StartStep() };

        if (s.ReasoningDeltas > 0)
        {
            parts.Add(Parts.Block("reasoning-start", "rsn_0"));
            for (var i = 0; i < s.ReasoningDeltas; i++)
            {
                parts.Add(Parts.Delta("reasoning-delta", "rsn_0", $"Considering step {i + 1}. "));
            }

            parts.Add(Parts.Block("reasoning-end", "rsn_0"));
        }

        if (s.WebSearch)
        {
            const string call = "call_search_0";
            parts.Add(Parts.ToolInputStart(call, "webSearch"));
            parts.Add(Parts.ToolInputDelta(call, "{\"query\":\"resumable "));
            parts.Add(Parts.ToolInputDelta(call, "streams\"}"));
            parts.Add(Parts.ToolInputAvailable(call, "webSearch", "{\"query\":\"resumable streams\"}"));
            parts.Add(Parts.ToolOutputAvailable(call, "{\"results\":[{\"title\":\"Server-sent events\",\"url\":\"https://example.com/sse\",\"content\":\"SSE streams text events over HTTP.\"}]}"));
            parts.Add(Parts.FinishStep());
            parts.Add(Parts.StartStep());
        }

        if (s.Artifact is { } kind)
        {
            const string call = "call_doc_0";
            var documentId = "doc_" + messageId;
            var title = kind == "diagram" ? "Stream lifecycle" : "Resume helper";
            var input = $"{{\"title\":\"{title}\",\"kind\":\"{kind}\"}}";
            parts.Add(Parts.ToolInputStart(call, "createDocument"));
            parts.Add(Parts.ToolInputDelta(call, input));
            parts.Add(Parts.ToolInputAvailable(call, "createDocument", input));
            parts.Add(Parts.Data("kind", Parts.JsonString(kind)));
            parts.Add(Parts.Data("id", Parts.JsonString(documentId)));
            parts.Add(Parts.Data("title", Parts.JsonString(title)));
            parts.Add(Parts.Data("clear", "null"));
            var deltaName = kind == "diagram" ? "diagramDelta" : "codeDelta";
            var content = new StringBuilder();
            string[] lines = kind == "diagram"
                ? ["graph TD", "  A[POST] --> B[pump]", "  B --> C[store]", "  C --> D[resume]"]
                : ["export async function resume(id: string) {", "  const res = await fetch(`/api/v/c010/${id}`);", "  return res.body;", "}"];
            foreach (var line in lines)
            {
                content.Append(line).Append('\n');
                parts.Add(Parts.Data(deltaName, Parts.JsonString(content.ToString())));
            }

            parts.Add(Parts.Data("finish", "null"));
            parts.Add(Parts.ToolOutputAvailable(call, $"{{\"id\":\"{documentId}\",\"title\":\"{title}\",\"kind\":\"{kind}\",\"content\":\"A document was created and is now visible to the user.\"}}"));
            parts.Add(Parts.FinishStep());
            parts.Add(Parts.StartStep());
        }

        parts.Add(Parts.Block("text-start", "txt_0"));
        var textStart = parts.Count;
        for (var i = 0; i < s.Deltas; i++)
        {
            var delta = s.DeltaBytes > 0 ? Pad(i, s.DeltaBytes) : Words[i % Words.Length] + " ";
            parts.Add(Parts.Delta("text-delta", "txt_0", delta));
        }

        parts.Add(Parts.Block("text-end", "txt_0"));
        parts.Add(Parts.FinishStep());
        parts.Add(Parts.Finish());

        if (s.InBandAck is { } status)
        {
            parts.Add(Parts.Data("persistence", Parts.Write(w =>
            {
                w.WriteString("messageId", messageId);
                w.WriteString("status", status);
                if (status == "failed")
                {
                    w.WriteString("error", "appendMessage failed: connection lost");
                }
            })));
        }

        if (s.PersistenceError)
        {
            parts.Add(Parts.Error(ErrorShapes.StreamErrorText(request, messageId, "persistence", "We couldn't save this response. Refreshing may lose it.")));
        }

        if (s.ResumeError)
        {
            parts.Add(Parts.Error(ErrorShapes.StreamErrorText(request, messageId, "resume", "We couldn't enable stream resume for this session.")));
        }

        var newline = s.Crlf ? "\r\n" : "\n";
        var frames = parts.Select(p => Frame(p, newline)).ToList();
        var done = Encoding.UTF8.GetBytes("data: [DONE]" + (s.NoFinalBlankLine ? string.Empty : newline + newline));
        frames.Add(done);

        // Malformed inserts go after text-start, so the stream around them is otherwise well-formed.
        var insertAt = textStart;
        if (s.LongLineBytes > 0)
        {
            frames.Insert(insertAt++, Frame(Parts.Delta("text-delta", "txt_0", new string('x', s.LongLineBytes)), newline));
        }

        if (s.BadJson)
        {
            frames.Insert(insertAt++, Encoding.UTF8.GetBytes("data: {\"type\":\"text-delta\",\"id\":" + newline + newline));
        }

        if (s.BinaryBytes > 0)
        {
            var garbage = new byte[s.BinaryBytes];
            new Random(s.BinaryBytes).NextBytes(garbage);
            frames.Insert(insertAt, garbage);
        }

        return frames;
    }

    /// <summary>A stream error part (shape D, category stream), for the <c>stream-error</c> scenario.</summary>
    public static byte[] StreamError(string messageId, RequestInfo request, bool crlf) =>
        Frame(Parts.Error(ErrorShapes.StreamErrorText(request, messageId, "stream", "The model stopped responding. Please try again.")), crlf ? "\r\n" : "\n");

    public static byte[] Done(bool crlf) => Encoding.UTF8.GetBytes(crlf ? "data: [DONE]\r\n\r\n" : "data: [DONE]\n\n");

    private static byte[] Frame(string json, string newline) => Encoding.UTF8.GetBytes("data: " + json + newline + newline);

    private static string Pad(int index, int bytes)
    {
        var prefix = $"{index}:";
        return prefix.Length >= bytes ? prefix : prefix + new string('a', bytes - prefix.Length);
    }
}
