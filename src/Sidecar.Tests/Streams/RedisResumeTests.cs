using System.Net;
using ChatUpstream;
using Sidecar.Tests.Common;

namespace Sidecar.Tests.Streams;

/// <summary>Two sidecar replicas on one real Redis: a stream produced through A is resumed through B.</summary>
public sealed class RedisResumeTests : IAsyncLifetime
{
    private EmulatorServer _emulator = null!;
    private SidecarServer _replicaA = null!;
    private SidecarServer _replicaB = null!;

    public async Task InitializeAsync()
    {
        _emulator = await EmulatorServer.StartAsync();
        var shared = new Dictionary<string, string?>
        {
            ["Sidecar:Store:Redis"] = RedisServer.Configuration,
            ["Sidecar:Store:KeyPrefix"] = RedisServer.NewPrefix(),
            ["Sidecar:Resume:FollowPollInterval"] = "00:00:05",
        };
        _replicaA = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>(shared) { ["Sidecar:Resume:ReplicaId"] = "a" });
        _replicaB = await SidecarServer.StartAsync(_emulator.Address, new Dictionary<string, string?>(shared) { ["Sidecar:Resume:ReplicaId"] = "b" });
    }

    public async Task DisposeAsync()
    {
        await _replicaA.DisposeAsync();
        await _replicaB.DisposeAsync();
        await _emulator.DisposeAsync();
    }

    [Fact]
    public async Task Resume_OnAnotherReplica_ReplaysAndFollowsLiveThroughRedis()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        var ended = _replicaA.PumpEnded(session);
        using var call = await Chat.StartAsync(clientA, _emulator, session, "/scenario gate:6 deltas:50 artifact");
        for (var i = 0; i < 6; i++)
        {
            Assert.NotNull(await call.Reader.NextAsync());
        }

        using var resumed = await clientB.SendAsync(Chat.Resume(session), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var replay = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        for (var i = 0; i < 6; i++)
        {
            Assert.StartsWith($"id: {i}\n", await replay.NextAsync());
        }

        // Live from here: every further event reaches B through Redis (the poll is 5 s, the test
        // would notice a follower that only polls).
        call.Record.ReleaseGate();
        var live = await call.Reader.ReadToEndAsync();
        var followed = await replay.ReadToEndAsync();
        await ended.DefaultTimeout();

        var expected = Chat.WithIds(Chat.Events(call.Record.SentBytes()));
        Assert.Equal(expected, live);
        Assert.Equal(expected, followed);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
    }

    [Fact]
    public async Task Resume_OnAnotherReplica_WithLastEventId_HasNoDuplicateAndNoGap()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        var call = await Chat.StartAsync(clientA, _emulator, session, "/scenario gate:9 deltas:30");
        var prefix = new List<byte>();
        for (var i = 0; i < 9; i++)
        {
            prefix.AddRange(System.Text.Encoding.UTF8.GetBytes(await call.Reader.NextAsync() + "\n\n"));
        }

        call.Dispose();
        using var resumed = await clientB.SendAsync(Chat.Resume(session, lastEventId: "8"), HttpCompletionOption.ResponseHeadersRead).DefaultTimeout();
        var rest = new TestEventReader(await resumed.Content.ReadAsStreamAsync());
        call.Record.ReleaseGate();

        byte[] rebuilt = [.. prefix, .. await rest.ReadToEndAsync()];
        Assert.Equal(AnswerStatus.Completed, await call.Record.Ended.DefaultTimeout());
        Assert.Equal(Chat.WithIds(Chat.Events(call.Record.SentBytes())), rebuilt);
    }

    [Fact]
    public async Task Resume_AfterTheStreamCompleted_Is204OnEveryReplica()
    {
        using var clientA = _replicaA.CreateClient();
        using var clientB = _replicaB.CreateClient();
        var session = Chat.NewSession();
        using (var call = await Chat.StartAsync(clientA, _emulator, session, "hello"))
        {
            await call.Reader.ReadToEndAsync();
        }

        // The end is written in the background: a resume in between follows the stream to its end.
        using var racing = await clientB.SendAsync(Chat.Resume(session)).DefaultTimeout();
        Assert.True(racing.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.OK);
        using var resumedOnB = await clientB.SendAsync(Chat.Resume(session)).DefaultTimeout();
        using var resumedOnA = await clientA.SendAsync(Chat.Resume(session)).DefaultTimeout();

        Assert.Equal(HttpStatusCode.NoContent, resumedOnB.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, resumedOnA.StatusCode);
    }
}
