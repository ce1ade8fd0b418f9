using System.Text;
using Sidecar.Streams.Store;
using StackExchange.Redis;

namespace Sidecar.Tests.Streams.Store;

/// <summary>
/// How a Redis read's two ranges (the entries that end in the window, then the entry after them)
/// make one run of events. The ranges are two commands: a producer may append between them.
/// </summary>
public class RedisReadTests
{
    [Fact]
    public void Merge_TheEntryAfterContinuesTheFirstRange_ItsEventsInTheWindowAreAdded()
    {
        // Events 57 and 58 alone, then one entry of events 59..190: the window [57, 187).
        var events = RedisStreamStore.Merge([Entry(57, 1), Entry(58, 1)], [Entry(59, 132)], from: 57, end: 187, maxCount: 130);

        Assert.Equal(Enumerable.Range(57, 130).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.Equal("e186", Encoding.UTF8.GetString(events[^1].Raw.Span));
    }

    [Fact]
    public void Merge_AppendedBetweenTheRanges_TheEntryAfterIsLeftForTheNextRead()
    {
        // At the first range the stream ended at 58; then events 59..184 were appended, and the
        // second range found the entry of 185..187: after 58 it would leave a hole.
        var events = RedisStreamStore.Merge([Entry(57, 1), Entry(58, 1)], [Entry(185, 3)], from: 57, end: 187, maxCount: 130);

        Assert.Equal([57L, 58], events.Select(e => e.Sequence));
    }

    [Theory]
    [InlineData(59, 59)]
    [InlineData(50, 59)]
    public void Merge_OnlyTheEntryAfter_CountsFromTheWindowsStart(int entryFrom, long firstExpected)
    {
        // Nothing ended in the window: the entry after holds its first events (when it spans it),
        // or its events start later (appended between the ranges, past a hole): left.
        var events = RedisStreamStore.Merge([], [Entry(entryFrom, 200)], from: 59, end: 100, maxCount: 41);

        Assert.Equal(firstExpected, events[0].Sequence);
        Assert.Equal(41, events.Count);
    }

    [Fact]
    public void Merge_OnlyTheEntryAfter_StartingPastTheWindowsStart_IsLeft()
    {
        var events = RedisStreamStore.Merge([], [Entry(70, 40)], from: 59, end: 100, maxCount: 41);

        Assert.Empty(events);
    }

    /// <summary>An entry of <paramref name="count"/> events from <paramref name="first"/> on, as the store writes it.</summary>
    private static StreamEntry Entry(long first, int count)
    {
        var data = string.Concat(Enumerable.Range(0, count).Select(i => "e" + (first + i)));
        var lengths = string.Join(",", Enumerable.Range(0, count).Select(i => ("e" + (first + i)).Length));
        var id = "0-" + (first + count);
        return count == 1
            ? new StreamEntry(id, [new NameValueEntry("d", data)])
            : new StreamEntry(id, [new NameValueEntry("n", lengths), new NameValueEntry("d", data)]);
    }
}
