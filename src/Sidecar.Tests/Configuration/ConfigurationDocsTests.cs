using Sidecar.Tests.Common;

namespace Sidecar.Tests.Configuration;

public class ConfigurationDocsTests
{
    [Fact]
    public void ConfigurationReference_MatchesTheOptionsClasses()
    {
        var path = Path.Combine(Loopback.RepositoryRoot(), "docs", "configuration.md");
        var expected = ConfigurationDocs.Render();
        if (Environment.GetEnvironmentVariable("SIDECAR_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, expected);
        }

        Assert.True(File.Exists(path), "docs/configuration.md is missing: SIDECAR_UPDATE_DOCS=1 dotnet test src/Sidecar.Tests --filter ConfigurationDocsTests");
        Assert.Equal(expected, File.ReadAllText(path));
    }

    [Fact]
    public void EverySetting_IsDocumented()
    {
        Assert.All(ConfigurationDocs.Settings(), setting => Assert.False(string.IsNullOrWhiteSpace(setting.Description), $"{setting.Key} has no XML doc summary"));
    }
}
