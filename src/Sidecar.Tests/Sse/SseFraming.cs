using System.Buffers;
using System.IO.Pipelines;
using Sidecar.Sse;

namespace Sidecar.Tests.Sse;

/// <summary>Feeds bytes to <see cref="SseEventReader"/> through a real <see cref="Pipe"/>, one read per chunk, as the pump does.</summary>
internal static class SseFraming
{
    public sealed record Framed(byte[] Raw, SseReadStatus Status);

    public static async Task<(List<Framed> Events, bool TooLarge)> FrameAsync(byte[] input, IReadOnlyList<int> splits, long maxEventBytes = 1 << 24)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, minimumSegmentSize: 16));
        var reader = new SseEventReader(maxEventBytes);
        var events = new List<Framed>();
        var cuts = splits.Where(s => s > 0 && s < input.Length).Distinct().Order().Append(input.Length).ToList();
        var start = 0;
        foreach (var cut in cuts)
        {
            await pipe.Writer.WriteAsync(input.AsMemory(start, cut - start));
            start = cut;
            if (cut == input.Length)
            {
                await pipe.Writer.CompleteAsync();
            }

            var result = await pipe.Reader.ReadAsync();
            var buffer = result.Buffer;
            SseReadStatus status;
            while ((status = reader.TryRead(ref buffer, result.IsCompleted, out var bytes)) is SseReadStatus.Event or SseReadStatus.Fragment)
            {
                events.Add(new Framed(bytes.ToArray(), status));
            }

            if (status == SseReadStatus.TooLarge)
            {
                return (events, true);
            }

            pipe.Reader.AdvanceTo(buffer.Start, buffer.End);
        }

        return (events, false);
    }
}
