using System.Buffers;
using System.Text;
using Sidecar.Sse;

namespace Sidecar.Tests.Sse;

public class SseEventTests
{
    private static SseEvent Parse(string raw) => SseEvent.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(raw)), terminated: true);

    [Theory]
    [InlineData("data: {\"a\":1}\n\n", "{\"a\":1}")]
    [InlineData("data:{\"a\":1}\n\n", "{\"a\":1}")]
    [InlineData("data:  two\n\n", " two")]
    [InlineData("data\n\n", "")]
    [InlineData("data: a\ndata: b\n\n", "a\nb")]
    [InlineData("data: a\r\ndata: b\r\n\r\n", "a\nb")]
    [InlineData("data: a\rdata: b\r\r", "a\nb")]
    [InlineData("id: 3\nevent: x\ndata: a\n: note\n\n", "a")]
    [InlineData("data: [DONE]", "[DONE]")]
    public void Parse_DataLines_JoinsThemPerTheSseRules(string raw, string data)
    {
        var evt = Parse(raw);

        Assert.True(evt.HasData);
        Assert.Equal(data, Encoding.UTF8.GetString(evt.Data.Span));
        Assert.Equal(raw, Encoding.UTF8.GetString(evt.Raw));
    }

    [Theory]
    [InlineData(": keep-alive\n\n")]
    [InlineData("\n")]
    [InlineData("datum: x\n\n")]
    [InlineData("id: 1\n\n")]
    public void Parse_NoDataField_HasNoData(string raw)
    {
        var evt = Parse(raw);

        Assert.False(evt.HasData);
        Assert.Equal(UiPartType.None, evt.Part.Type);
    }

    [Theory]
    [InlineData("{\"type\":\"start\",\"messageId\":\"m1\"}", "Start", "m1")]
    [InlineData("{\"messageId\":\"m2\",\"type\":\"start\"}", "Start", "m2")]
    [InlineData("{\"type\":\"start\"}", "Start", null)]
    [InlineData("{\"type\":\"finish\"}", "Finish", null)]
    [InlineData("{\"type\":\"error\",\"errorText\":\"{}\"}", "Error", null)]
    [InlineData("{\"type\":\"abort\"}", "Abort", null)]
    [InlineData("{\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"x\"}", "TextDelta", null)]
    [InlineData("{\"type\":\"data-clear\",\"data\":null,\"transient\":true}", "DataClear", null)]
    [InlineData("{\"type\":\"data-finish\",\"data\":null,\"transient\":true}", "DataFinish", null)]
    [InlineData("{\"type\":\"data-persistence\",\"data\":{\"status\":\"saved\"},\"transient\":true}", "DataPersistence", null)]
    [InlineData("{\"data\":{\"type\":\"finish\"},\"type\":\"data-x\"}", "Other", null)]
    [InlineData("{\"type\":\"tool-input-available\",\"input\":{\"a\":[1,2,{\"b\":null}]}}", "Other", null)]
    [InlineData("[DONE]", "Done", null)]
    [InlineData("{\"type\":\"text-delta\",\"id\":", "Invalid", null)]
    [InlineData("{\"type\":7}", "Invalid", null)]
    [InlineData("{\"type\":\"finish\",\"x\":", "Invalid", null)]
    [InlineData("{\"type\":\"finish\"} trailing", "Invalid", null)]
    [InlineData("{\"id\":\"x\"}", "Invalid", null)]
    [InlineData("[1,2]", "Invalid", null)]
    [InlineData("{\"type\":\"\\ud800\"}", "Invalid", null)]
    [InlineData("{\"type\":\"start\",\"messageId\":\"\\udc00x\"}", "Invalid", null)]
    [InlineData("not json", "Invalid", null)]
    [InlineData("", "Invalid", null)]
    public void Sniff_PartJson_FindsTypeAndStartMessageId(string json, string type, string? messageId)
    {
        var part = UiPart.Sniff(Encoding.UTF8.GetBytes(json));

        Assert.Equal(type, part.Type.ToString());
        Assert.Equal(messageId, part.MessageId);
    }

    [Theory]
    [InlineData("data: {}", "data: {}\n\n")]
    [InlineData("data: {}\n", "data: {}\n\n")]
    [InlineData("data: {}\r\n", "data: {}\r\n\n")]
    // CR line endings: another CR makes the blank line (an LF would only make the CR a CRLF).
    [InlineData("data: {}\r", "data: {}\r\r")]
    public void Terminate_AFragment_EndsItWithABlankLine(string fragment, string terminated)
    {
        var evt = SseEvent.Terminate(SseEvent.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(fragment)), terminated: false));

        Assert.Equal(terminated, Encoding.UTF8.GetString(evt.Raw));
        Assert.True(evt.IsTerminated);
        Assert.Equal("{}", Encoding.UTF8.GetString(evt.Data.Span));
    }

    [Theory]
    [InlineData("{\"type\":\"error\",\"errorText\":\"{\\\"category\\\":\\\"resume\\\"}\"}", true)]
    [InlineData("{\"type\":\"error\",\"errorText\":\"{\\\"category\\\":\\\"persistence\\\"}\"}", false)]
    [InlineData("{\"type\":\"error\",\"errorText\":\"not json\"}", false)]
    // A lone surrogate (a string cut inside an emoji) cannot be unescaped: not a resume error, no throw.
    [InlineData("{\"type\":\"error\",\"errorText\":\"\\ud800\"}", false)]
    public void IsResumeError_ReadsTheCategoryOfTheErrorText(string json, bool resume)
    {
        Assert.Equal(resume, UiPart.IsResumeError(Encoding.UTF8.GetBytes(json)));
    }
}
