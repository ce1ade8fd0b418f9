using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Sidecar.Telemetry;
using Sidecar.Tests.Common;
using YamlDotNet.RepresentationModel;

namespace Sidecar.Tests.Deploy;

/// <summary>
/// What ships in deploy/: the Kubernetes manifests render and hold what a cluster needs, and the
/// dashboard and alerts only use metrics the code defines (with the Prometheus exporter's names).
/// </summary>
public class DeployTests
{
    private static readonly string Root = Loopback.RepositoryRoot();

    [Fact]
    public void Kustomization_Renders_AndEveryManifestIsWellFormed()
    {
        var documents = RenderKustomization();

        Assert.Equal(
            ["ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget", "Secret", "Service", "Service", "Service", "ServiceMonitor"],
            documents.Select(d => Scalar(d, "kind")).Order(StringComparer.Ordinal));
        foreach (var document in documents)
        {
            Assert.False(string.IsNullOrEmpty(Scalar(document, "apiVersion")));
            Assert.Matches("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", Scalar(document, "metadata", "name"));
        }

        // Every Service selects pods that a Deployment creates, through a port those pods name.
        var deployments = documents.Where(d => Scalar(d, "kind") == "Deployment").ToList();
        foreach (var service in documents.Where(d => Scalar(d, "kind") == "Service"))
        {
            var selector = Map(service, "spec", "selector");
            var target = deployments.Single(d => selector.Children.All(kv => Scalar(d, "spec", "template", "metadata", "labels", kv.Key.ToString()) == kv.Value.ToString()));
            var ports = Seq(target, "spec", "template", "spec", "containers").Children.OfType<YamlMappingNode>()
                .SelectMany(c => c.Children.TryGetValue("ports", out var p) ? ((YamlSequenceNode)p).Children.OfType<YamlMappingNode>() : [])
                .Select(p => p["name"].ToString()).ToList();
            Assert.All(Seq(service, "spec", "ports").Children.OfType<YamlMappingNode>(), p => Assert.Contains(p["targetPort"].ToString(), ports));
        }
    }

    [Fact]
    public void SidecarContainer_IsProbedOnTheManagementPort_Hardened_AndGivenTimeToDrain()
    {
        var deployment = RenderKustomization().Single(d => Scalar(d, "kind") == "Deployment" && Scalar(d, "metadata", "name") == "c010-chat");
        var pod = Map(deployment, "spec", "template", "spec");
        var sidecar = Seq(pod, "containers").Children.OfType<YamlMappingNode>().Single(c => c["name"].ToString() == "sidecar");

        Assert.Equal("/healthz", Scalar(sidecar, "livenessProbe", "httpGet", "path"));
        Assert.Equal("/readyz", Scalar(sidecar, "readinessProbe", "httpGet", "path"));
        Assert.Equal("management", Scalar(sidecar, "readinessProbe", "httpGet", "port"));
        Assert.Equal("true", Scalar(sidecar, "securityContext", "runAsNonRoot"));
        Assert.Equal("true", Scalar(sidecar, "securityContext", "readOnlyRootFilesystem"));
        Assert.Equal("false", Scalar(sidecar, "securityContext", "allowPrivilegeEscalation"));
        Assert.False(string.IsNullOrEmpty(Scalar(sidecar, "resources", "limits", "memory")));

        // The grace period covers the shutdown delay, the drain, and the last settlements.
        var config = RenderKustomization().Single(d => Scalar(d, "kind") == "ConfigMap");
        var drain = TimeSpan.Parse(Scalar(config, "data", "Sidecar__Streams__DrainTimeout"), System.Globalization.CultureInfo.InvariantCulture);
        var delay = TimeSpan.Parse(Scalar(config, "data", "Sidecar__Streams__ShutdownDelay"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(int.Parse(Scalar(pod, "terminationGracePeriodSeconds"), System.Globalization.CultureInfo.InvariantCulture) >= (drain + delay).TotalSeconds + 15);
    }

    [Fact]
    public void ChatContainer_OutlivesTheSidecarsDrain_WithinTheGracePeriod()
    {
        var documents = RenderKustomization();
        var pod = Map(documents.Single(d => Scalar(d, "kind") == "Deployment" && Scalar(d, "metadata", "name") == "c010-chat"), "spec", "template", "spec");
        var chat = Seq(pod, "containers").Children.OfType<YamlMappingNode>().Single(c => c["name"].ToString() == "chat");
        var config = documents.Single(d => Scalar(d, "kind") == "ConfigMap");
        var drain = TimeSpan.Parse(Scalar(config, "data", "Sidecar__Streams__DrainTimeout"), System.Globalization.CultureInfo.InvariantCulture);
        var delay = TimeSpan.Parse(Scalar(config, "data", "Sidecar__Streams__ShutdownDelay"), System.Globalization.CultureInfo.InvariantCulture);

        // Both containers get SIGTERM at once: the service waits until the sidecar's streams have
        // drained and its last settlements (15 s) are made, and then still has time to exit.
        var wait = int.Parse(Scalar(chat, "lifecycle", "preStop", "sleep", "seconds"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(wait >= (drain + delay).TotalSeconds + 15, $"the chat container stops after {wait} s");
        Assert.True(int.Parse(Scalar(pod, "terminationGracePeriodSeconds"), System.Globalization.CultureInfo.InvariantCulture) >= wait + 10);
    }

    [Fact]
    public void BundledRedis_MakesRoomBeforeItsLimit_AndNeverEvictsTheQuotaOutbox()
    {
        var redis = RenderKustomization().Single(d => Scalar(d, "kind") == "Deployment" && Scalar(d, "metadata", "name") == "c010-redis");
        var container = Seq(redis, "spec", "template", "spec", "containers").Children.OfType<YamlMappingNode>().Single();
        var args = Seq(container, "args").Children.Select(a => a.ToString()).ToList();
        string Arg(string name) => args[args.IndexOf(name) + 1];

        Assert.Matches("^[0-9]+mb$", Arg("--maxmemory"));
        var cap = long.Parse(Arg("--maxmemory")[..^2], System.Globalization.CultureInfo.InvariantCulture) * 1024 * 1024;
        var limit = Scalar(container, "resources", "limits", "memory");
        Assert.Matches("^[0-9]+Gi$", limit);
        // Room for an AOF rewrite's fork beside the data.
        Assert.True(cap <= long.Parse(limit[..^2], System.Globalization.CultureInfo.InvariantCulture) * 1024 * 1024 * 1024 * 7 / 10);
        // Only keys with a time to live: the outbox's keys have none.
        Assert.StartsWith("volatile-", Arg("--maxmemory-policy"), StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigMap_LeavesOffWhatNeedsTheServicesSide()
    {
        // The service sends no acknowledgment and has no quota API today: on, every answer would
        // end with a persistence error, every settlement would fail.
        var config = RenderKustomization().Single(d => Scalar(d, "kind") == "ConfigMap");
        Assert.Equal("None", Scalar(config, "data", "Sidecar__Persistence__Mode"));
        Assert.Equal(string.Empty, Scalar(config, "data", "Sidecar__Quota__BaseUrl"));
    }

    [Fact]
    public void ConfigMapAndSecretKeys_AreSettingsTheSidecarReads()
    {
        var known = Configuration.ConfigurationDocs.Settings().Select(s => s.EnvironmentVariable).ToHashSet(StringComparer.Ordinal);
        var documents = RenderKustomization();
        var keys = documents.Where(d => Scalar(d, "kind") is "ConfigMap").SelectMany(d => Map(d, "data").Children.Keys)
            .Concat(documents.Where(d => Scalar(d, "kind") is "Secret").SelectMany(d => Map(d, "stringData").Children.Keys))
            .Select(k => k.ToString())
            .Where(k => k.StartsWith("Sidecar__", StringComparison.Ordinal));

        Assert.All(keys, key => Assert.Contains(key, known));
    }

    [Fact]
    public void AlertsAndDashboard_Parse_AndUseOnlyMetricsTheSidecarDefines()
    {
        var defined = PrometheusNames();
        var alertsText = File.ReadAllText(Path.Combine(Root, "deploy", "prometheus", "alerts.yaml"));
        var alerts = new YamlStream();
        alerts.Load(new StringReader(alertsText));
        var rules = Seq((YamlMappingNode)alerts.Documents[0].RootNode, "groups").Children.OfType<YamlMappingNode>()
            .SelectMany(g => ((YamlSequenceNode)g["rules"]).Children.OfType<YamlMappingNode>()).ToList();
        Assert.True(rules.Count >= 5);
        Assert.All(rules, rule =>
        {
            Assert.False(string.IsNullOrEmpty(rule["alert"].ToString()));
            Assert.False(string.IsNullOrEmpty(rule["expr"].ToString()));
            Assert.Contains(Scalar(rule, "labels", "severity"), new[] { "warning", "critical" });
            Assert.False(string.IsNullOrEmpty(Scalar(rule, "annotations", "summary")));
        });

        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "deploy", "grafana", "sidecar-dashboard.json")));
        var expressions = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .Where(p => p.TryGetProperty("targets", out _))
            .SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!))
            .ToList();
        Assert.True(expressions.Count >= 15);

        var used = rules.Select(r => r["expr"].ToString()).Concat(expressions)
            .SelectMany(e => Regex.Matches(e, @"\bsidecar_[a-z0-9_]+").Select(m => m.Value)).ToHashSet(StringComparer.Ordinal);
        Assert.All(used, name => Assert.Contains(name, defined));
        // The dashboard covers every family the issue names.
        foreach (var family in new[] { "sidecar_stream_ended_total", "sidecar_stream_injected_total", "sidecar_persistence_ack_duration_seconds_bucket", "sidecar_resume_requests_total", "sidecar_store_available", "sidecar_quota_outbox_depth", "sidecar_quota_stuck_found_total" })
        {
            Assert.Contains(family, used);
        }
    }

    /// <summary>Every name the Prometheus exporter gives the sidecar's instruments: dots to underscores, the unit as a suffix, _total on counters, _bucket/_sum/_count on histograms.</summary>
    private static HashSet<string> PrometheusNames()
    {
        var instruments = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == SidecarMetrics.MeterName)
                {
                    lock (instruments)
                    {
                        instruments.Add(instrument);
                    }
                }
            },
        };
        listener.Start();
        using var services = new ServiceCollection().AddMetrics().AddSingleton<SidecarMetrics>().BuildServiceProvider();
        _ = services.GetRequiredService<SidecarMetrics>();

        // Other tests' sidecars publish instruments concurrently: stop listening, then read a copy.
        listener.Dispose();
        List<Instrument> published;
        lock (instruments)
        {
            published = [.. instruments];
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var instrument in published)
        {
            var name = instrument.Name.Replace('.', '_');
            var unit = instrument.Unit switch { "s" => "seconds", "By" => "bytes", _ => null };
            if (unit is not null && !name.EndsWith("_" + unit, StringComparison.Ordinal))
            {
                name += "_" + unit;
            }

            var type = instrument.GetType().GetGenericTypeDefinition();
            if (type == typeof(Counter<>) || type == typeof(ObservableCounter<>))
            {
                names.Add(name + "_total");
            }
            else if (type == typeof(Histogram<>))
            {
                names.UnionWith([name + "_bucket", name + "_sum", name + "_count"]);
            }
            else
            {
                names.Add(name);
            }
        }

        return names;
    }

    /// <summary>The rendered manifests: <c>kubectl kustomize</c> where kubectl is installed, else the resources read as listed.</summary>
    private static List<YamlMappingNode> RenderKustomization()
    {
        var directory = Path.Combine(Root, "deploy", "k8s");
        string yaml;
        try
        {
            var info = new ProcessStartInfo("kubectl", ["kustomize", directory]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(info)!;
            yaml = process.StandardOutput.ReadToEnd();
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, error);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No kubectl: the same resources, as the kustomization lists them.
            var kustomization = new YamlStream();
            kustomization.Load(new StringReader(File.ReadAllText(Path.Combine(directory, "kustomization.yaml"))));
            yaml = string.Join("\n---\n", Seq((YamlMappingNode)kustomization.Documents[0].RootNode, "resources").Children
                .Select(r => File.ReadAllText(Path.Combine(directory, r.ToString()))));
        }

        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return [.. stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>()];
    }

    private static YamlMappingNode Map(YamlMappingNode node, params string[] path) => (YamlMappingNode)Walk(node, path);

    private static YamlSequenceNode Seq(YamlMappingNode node, params string[] path) => (YamlSequenceNode)Walk(node, path);

    private static string Scalar(YamlMappingNode node, params string[] path) => Walk(node, path) is YamlScalarNode scalar ? scalar.Value ?? string.Empty : string.Empty;

    private static YamlNode Walk(YamlMappingNode node, string[] path)
    {
        YamlNode current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next))
            {
                return new YamlScalarNode(string.Empty);
            }

            current = next;
        }

        return current;
    }
}
