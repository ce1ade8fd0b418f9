using System.Diagnostics;

namespace Sidecar.Tests.Common;

/// <summary>
/// A real three-node Redis Cluster on loopback (three <c>redis-server --cluster-enabled yes</c>
/// joined with <c>redis-cli --cluster create</c>), started once for the test run.
/// </summary>
internal static class RedisCluster
{
    private static readonly Lazy<string> Shared = new(Start);

    /// <summary>A StackExchange.Redis configuration string naming the three nodes.</summary>
    public static string Configuration => Shared.Value;

    private static string Start()
    {
        var directory = Directory.CreateTempSubdirectory("sidecar-cluster-");
        // Cluster nodes also listen on port + 10000 (the cluster bus): both below the kernel's
        // ephemeral range where it leaves room, so that no other test's server on port 0 is
        // given one meanwhile.
        var ports = new List<int>();
        while (ports.Count < 3)
        {
            var port = Loopback.ServerPort(alsoAbove: 10_000);
            if (!ports.Exists(other => Math.Abs(other - port) is 0 or 10_000))
            {
                ports.Add(port);
            }
        }

        var nodes = new List<Process>();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var node in nodes.Where(n => !n.HasExited))
            {
                node.Kill();
            }

            directory.Delete(recursive: true);
        };

        foreach (var port in ports)
        {
            var p = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            nodes.Add(Run("redis-server", wait: false, "--port", p, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", $"nodes-{p}.conf", "--dir", directory.FullName, "--save", "", "--appendonly", "no"));
        }

        foreach (var port in ports)
        {
            Loopback.WaitForListener(port, "redis-server (cluster node)");
        }

        var create = new List<string> { "--cluster", "create" };
        create.AddRange(ports.Select(p => $"127.0.0.1:{p}"));
        create.AddRange(["--cluster-replicas", "0", "--cluster-yes"]);
        using (var created = Run("redis-cli", wait: true, [.. create]))
        {
            if (created.ExitCode != 0)
            {
                throw new InvalidOperationException("redis-cli --cluster create failed");
            }
        }

        // The nodes agree on the slot map within moments; wait until each says the cluster is ok.
        var deadline = Stopwatch.StartNew();
        foreach (var port in ports)
        {
            while (true)
            {
                using var info = Run("redis-cli", wait: true, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "cluster", "info");
                if (info.StandardOutput.ReadToEnd().Contains("cluster_state:ok", StringComparison.Ordinal))
                {
                    break;
                }

                if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                {
                    throw new InvalidOperationException("the Redis Cluster did not reach cluster_state:ok");
                }
            }
        }

        return string.Join(",", ports.Select(p => $"127.0.0.1:{p}"));
    }

    private static Process Run(string file, bool wait, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        process.StandardInput.Close();
        if (wait)
        {
            process.WaitForExit();
        }
        else
        {
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        return process;
    }
}
