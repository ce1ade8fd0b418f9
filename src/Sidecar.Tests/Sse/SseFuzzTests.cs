using System.Buffers;
using System.Diagnostics;
using Sidecar.Sse;

namespace Sidecar.Tests.Sse;

/// <summary>
/// The SSE reader and part parser against generated input: random bytes (weighted toward line
/// breaks and SSE syntax), random read splits, random size limits. At least 100,000 cases in a
/// bounded run, each checked for the reader's promises.
/// </summary>
public class SseFuzzTests
{
    private static readonly byte[][] Alphabet =
    [
        "\n"u8.ToArray(), "\r"u8.ToArray(), "\r\n"u8.ToArray(), "data: "u8.ToArray(), "data:"u8.ToArray(), ": "u8.ToArray(), "id: 7"u8.ToArray(),
        "{\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"x\"}"u8.ToArray(), "{\"type\":"u8.ToArray(), "[DONE]"u8.ToArray(), "\"\\u"u8.ToArray(),
        "é"u8.ToArray(), [0xC3], [0xFF], [0x00], "{"u8.ToArray(), "}"u8.ToArray(), "\"messageId\":\""u8.ToArray(),
    ];

    [Fact]
    public void ReaderAndParser_HundredThousandGeneratedStreams_NeverThrow_LoseOrDuplicateAByte()
    {
        var random = new Random(20261124);
        var cases = 0;
        var events = 0L;
        var budget = Stopwatch.StartNew();
        while (cases < 100_000)
        {
            var input = Generate(random);
            var limit = random.Next(4) == 0 ? random.Next(2, 64) : 1 << 20;
            var splits = Enumerable.Range(0, random.Next(0, 6)).Select(_ => random.Next(0, input.Length + 1)).Order().ToArray();

            var (whole, wholeTooLarge) = Frame(input, [], limit);
            var (split, splitTooLarge) = Frame(input, splits, limit);

            if (!wholeTooLarge && !splitTooLarge)
            {
                // Bytes out are bytes in: nothing lost, nothing repeated, whatever the reads.
                Assert.Equal(input, whole.SelectMany(e => e).ToArray());
                Assert.Equal(whole.Count, split.Count);
                for (var i = 0; i < whole.Count; i++)
                {
                    Assert.Equal(whole[i], split[i]);
                }
            }

            foreach (var raw in split)
            {
                // Parsing any framed event never throws, whatever its bytes.
                _ = SseEvent.Parse(new ReadOnlySequence<byte>(raw), terminated: true).Part;
                events++;
            }

            cases++;
        }

        Assert.True(budget.Elapsed < TimeSpan.FromMinutes(2), $"{cases} cases took {budget.Elapsed}");
        Assert.True(events > cases, $"{events} events framed from {cases} cases");
    }

    private static byte[] Generate(Random random)
    {
        var output = new List<byte>();
        var pieces = random.Next(0, 24);
        for (var i = 0; i < pieces; i++)
        {
            if (random.Next(5) == 0)
            {
                output.Add((byte)random.Next(256));
            }
            else
            {
                output.AddRange(Alphabet[random.Next(Alphabet.Length)]);
            }
        }

        return [.. output];
    }

    /// <summary>Frames as the pump does: each read adds bytes after what is left of the previous one.</summary>
    private static (List<byte[]> Events, bool TooLarge) Frame(byte[] input, int[] splits, int limit)
    {
        var reader = new SseEventReader(limit);
        var events = new List<byte[]>();
        var pending = Array.Empty<byte>();
        var start = 0;
        foreach (var cut in splits.Append(input.Length))
        {
            var chunk = input.AsSpan(start, cut - start);
            start = cut;
            pending = [.. pending, .. chunk];
            var final = cut == input.Length;
            var buffer = new ReadOnlySequence<byte>(pending);
            SseReadStatus status;
            while ((status = reader.TryRead(ref buffer, final, out var bytes)) is SseReadStatus.Event or SseReadStatus.Fragment)
            {
                events.Add(bytes.ToArray());
            }

            if (status == SseReadStatus.TooLarge)
            {
                return (events, true);
            }

            pending = buffer.ToArray();
        }

        return (events, false);
    }
}
