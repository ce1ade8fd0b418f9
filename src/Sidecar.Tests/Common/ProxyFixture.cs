namespace Sidecar.Tests.Common;

/// <summary>One emulator and one sidecar in front of it, shared by the tests of a class.</summary>
public sealed class ProxyFixture : IAsyncLifetime
{
    public EmulatorServer Emulator { get; private set; } = null!;

    public SidecarServer Sidecar { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = await EmulatorServer.StartAsync();
        // No heartbeats: the byte-for-byte comparisons must not depend on how fast the machine is.
        Sidecar = await SidecarServer.StartAsync(Emulator.Address, new Dictionary<string, string?> { ["Sidecar:Streams:HeartbeatInterval"] = "00:00:00" });
    }

    public async Task DisposeAsync()
    {
        await Sidecar.DisposeAsync();
        await Emulator.DisposeAsync();
    }
}
