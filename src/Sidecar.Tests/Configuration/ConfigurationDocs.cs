using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Xml.Linq;
using Sidecar.Configuration;
using Sidecar.Errors;
using Sidecar.Hosting;
using Sidecar.Persistence;
using Sidecar.Quota;
using Sidecar.Streams;
using Sidecar.Streams.Store;

namespace Sidecar.Tests.Configuration;

/// <summary>One setting: its configuration key, environment variable, default and description.</summary>
internal sealed record Setting(string Key, string EnvironmentVariable, string Default, string Description);

/// <summary>
/// Builds <c>docs/configuration.md</c> from the options classes themselves (their properties,
/// defaults and XML docs), so that the reference cannot drift from the code.
/// </summary>
internal static class ConfigurationDocs
{
    private static readonly (string Section, Type Options)[] Sections =
    [
        (SidecarOptions.SectionName, typeof(SidecarOptions)),
        (StreamOptions.SectionName, typeof(StreamOptions)),
        (StreamStoreOptions.SectionName, typeof(StreamStoreOptions)),
        (ResumeOptions.SectionName, typeof(ResumeOptions)),
        (PersistenceOptions.SectionName, typeof(PersistenceOptions)),
        (ErrorNormalizationOptions.SectionName, typeof(ErrorNormalizationOptions)),
        (QuotaOptions.SectionName, typeof(QuotaOptions)),
        (HealthOptions.SectionName, typeof(HealthOptions)),
    ];

    public static IEnumerable<Setting> Settings()
    {
        var docs = LoadXmlDocs();
        foreach (var (section, type) in Sections)
        {
            foreach (var setting in Describe(section, type, Activator.CreateInstance(type)!, docs))
            {
                yield return setting;
            }
        }
    }

    public static string Render()
    {
        var text = new StringBuilder();
        text.Append("""
            # Configuration

            Every setting of the sidecar, generated from its options classes (`src/Sidecar`): the
            configuration key, the environment variable that sets it (`:` becomes `__`), its default
            and what it does. Settings come, in order of precedence, from the command line
            (`--Sidecar:UpstreamUrl=...`), environment variables, and `appsettings.json`. A bad value
            stops start-up with a message that names the key.

            Regenerate after changing an options class: `SIDECAR_UPDATE_DOCS=1 dotnet test
            src/Sidecar.Tests --filter ConfigurationDocsTests`; a test fails while this file and the
            code disagree.

            Besides these: the standard `ReverseProxy` section (YARP routes and clusters), `Logging`
            (`Logging__Console__FormatterName=json` for JSON lines; `Logging__Console__FormatterOptions__IncludeScopes=true`
            adds the trace and span ids), and OpenTelemetry's own variables (`OTEL_EXPORTER_OTLP_ENDPOINT`
            turns on OTLP export of traces, metrics and logs; `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).

            """);
        foreach (var group in Settings().GroupBy(s => s.Key[..s.Key.LastIndexOf(':')]))
        {
            text.Append(CultureInfo.InvariantCulture, $"\n## `{group.Key}`\n\n| key | environment variable | default | meaning |\n|---|---|---|---|\n");
            foreach (var setting in group)
            {
                text.Append(CultureInfo.InvariantCulture, $"| `{setting.Key}` | `{setting.EnvironmentVariable}` | {setting.Default} | {setting.Description} |\n");
            }
        }

        return text.ToString();
    }

    private static IEnumerable<Setting> Describe(string prefix, Type type, object instance, IReadOnlyDictionary<string, string> docs)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            var key = $"{prefix}:{property.Name}";
            var value = property.GetValue(instance);
            var propertyType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (propertyType.IsClass && propertyType != typeof(string) && !typeof(IEnumerable).IsAssignableFrom(propertyType))
            {
                foreach (var nested in Describe(key, propertyType, value ?? Activator.CreateInstance(propertyType)!, docs))
                {
                    yield return nested;
                }

                continue;
            }

            docs.TryGetValue($"P:{type.FullName}.{property.Name}", out var description);
            yield return new Setting(key, key.Replace(":", "__", StringComparison.Ordinal), Format(value), description ?? string.Empty);
        }
    }

    private static string Format(object? value) => value switch
    {
        null => "empty",
        string s when s.Length == 0 => "empty",
        string s => $"`{s}`",
        bool b => b ? "`true`" : "`false`",
        TimeSpan t => $"`{t.ToString("c", CultureInfo.InvariantCulture)}`",
        IDictionary dictionary => string.Join(", ", dictionary.Keys.Cast<object>().Select(k => $"`{k}`")) is { Length: > 0 } keys ? $"entries for {keys}" : "none",
        IFormattable f => $"`{f.ToString(null, CultureInfo.InvariantCulture)}`",
        _ => $"`{value}`",
    };

    /// <summary>The summaries of the sidecar's XML docs, by member id, flattened to one line.</summary>
    private static Dictionary<string, string> LoadXmlDocs()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Sidecar.xml");
        var docs = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"{path} is missing: the Sidecar project generates its XML documentation file.");
        }

        foreach (var member in XDocument.Load(path).Descendants("member"))
        {
            if (member.Element("summary") is { } summary)
            {
                var text = string.Concat(summary.Nodes().Select(n => n switch
                {
                    XElement { Name.LocalName: "c" } c => $"`{c.Value}`",
                    XElement { Name.LocalName: "see" } see => $"`{(see.Attribute("cref")?.Value ?? see.Attribute("langword")?.Value ?? string.Empty).Split('.')[^1]}`",
                    XElement e => e.Value,
                    _ => n.ToString(),
                }));
                docs[member.Attribute("name")!.Value] = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Replace("|", "\\|", StringComparison.Ordinal);
            }
        }

        return docs;
    }
}
