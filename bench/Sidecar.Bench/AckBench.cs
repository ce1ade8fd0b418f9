using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Sidecar.Bench;

/// <summary>
/// What holding finish for an in-band acknowledgment costs: the time at the client from the last
/// part before finish (finish-step) to [DONE], direct to the emulator, through the sidecar with no
/// acknowledgment awaited, and through the sidecar holding finish for the in-band ack. The
/// emulator writes the ack a fixed delay after finish, so all three include that delay; what the
/// sidecar adds is the difference. Concurrent streams, targets interleaved round by round.
/// </summary>
internal static class AckBench
{
    public static async Task<int> RunAsync(string root, string configuration, int concurrency, int rounds)
    {
        var emulatorDll = Path.Combine(root, "samples/ChatUpstream/bin", configuration, "net10.0/ChatUpstream.dll");
        var sidecarDll = Path.Combine(root, "src/Sidecar/bin", configuration, "net10.0/Sidecar.dll");
        var emulatorPort = ChildProcess.FreePort();
        using var emulator = await ChildProcess.StartAsync(emulatorDll, ["--urls", $"http://127.0.0.1:{emulatorPort}", "--Emulator:DefaultPaceMs=0", "--Emulator:ResumableStreams=false"], emulatorPort, "/");
        var (none, nonePort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, ["--Sidecar:Persistence:Mode=None"]);
        using var noneSidecar = none;
        var (inBand, inBandPort) = await ChildProcess.StartSidecarAsync(sidecarDll, emulatorPort, ["--Sidecar:Persistence:Mode=InBand"]);
        using var inBandSidecar = inBand;

        using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = int.MaxValue }) { Timeout = TimeSpan.FromMinutes(1) };
        var targets = new (string Name, int Port)[] { ("direct", emulatorPort), ("sidecar, no ack awaited", nonePort), ("sidecar, in-band ack held", inBandPort) };
        var samples = targets.ToDictionary(t => t.Name, _ => new List<double>());
        const string scenario = "deltas:20 pace:5 ack:saved ack-delay:20";
        for (var round = -2; round < rounds; round++)
        {
            for (var t = 0; t < targets.Length; t++)
            {
                var target = targets[(t + Math.Max(0, round)) % targets.Length];
                var results = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(i => FinishToDoneAsync(http, target.Port, $"ack{round}-{t}-{i}", scenario)));
                if (round >= 0)
                {
                    samples[target.Name].AddRange(results);
                }
            }
        }

        Console.WriteLine($"time at the client from finish-step to [DONE] (ms), {concurrency} concurrent streams x {rounds} rounds per target; the emulator writes its in-band ack 20 ms after finish ({scenario})");
        Console.WriteLine("target                          p50       p99");
        var direct = samples["direct"];
        direct.Sort();
        foreach (var (name, values) in samples)
        {
            values.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-28} {ChildProcess.Percentile(values, 0.5),7:F2}   {ChildProcess.Percentile(values, 0.99),7:F2}   (p99 added vs direct {ChildProcess.Percentile(values, 0.99) - ChildProcess.Percentile(direct, 0.99),6:F2})"));
        }

        return 0;
    }

    private static async Task<double> FinishToDoneAsync(HttpClient http, int port, string session, string scenario)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/api/v/c010/{session}")
        {
            Content = new StringContent($$"""{"messages":[{"id":"u","role":"user","parts":[{"type":"text","text":"/scenario {{scenario}}"}]}]}""", Encoding.UTF8, "application/json"),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        var text = new StringBuilder();
        var buffer = new byte[16 * 1024];
        long finishStepAt = 0;
        int read;
        while ((read = await body.ReadAsync(buffer)) > 0)
        {
            text.Append(Encoding.UTF8.GetString(buffer, 0, read));
            if (finishStepAt == 0 && text.ToString().Contains("\"finish-step\"", StringComparison.Ordinal))
            {
                finishStepAt = Stopwatch.GetTimestamp();
            }

            if (text.ToString().Contains("[DONE]", StringComparison.Ordinal))
            {
                return Stopwatch.GetElapsedTime(finishStepAt).TotalMilliseconds;
            }
        }

        throw new InvalidOperationException($"{session}: the stream ended without [DONE]");
    }

}
