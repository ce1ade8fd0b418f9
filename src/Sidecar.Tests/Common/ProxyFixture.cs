namespace Sidecar.Tests.Common;

/// <summary>
/// One emulator and one sidecar in front of it, shared by the tests of a class. Heartbeats and
/// event ids are off, so that what the client receives can be compared byte for byte with what
/// the upstream sent.
/// </summary>
public sealed class ProxyFixture : IAsyncLifetime
{
    public EmulatorServer Emulator { get; private set; } = null!;

    public SidecarServer Sidecar { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = await EmulatorServer.StartAsync();
        Sidecar = await SidecarServer.StartAsync(Emulator.Address, new Dictionary<string, string?>
        {
            ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00",
            ["Sidecar:Resume:EventIds"] = "false",
        });
    }

    public async Task DisposeAsync()
    {
        await Sidecar.DisposeAsync();
        await Emulator.DisposeAsync();
    }
}

/// <summary>One emulator and one sidecar with the default settings (event ids on).</summary>
public sealed class DefaultSidecarFixture : IAsyncLifetime
{
    public EmulatorServer Emulator { get; private set; } = null!;

    public SidecarServer Sidecar { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = await EmulatorServer.StartAsync();
        Sidecar = await SidecarServer.StartAsync(Emulator.Address);
    }

    public async Task DisposeAsync()
    {
        await Sidecar.DisposeAsync();
        await Emulator.DisposeAsync();
    }
}
