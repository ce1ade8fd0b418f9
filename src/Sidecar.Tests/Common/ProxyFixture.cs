namespace Sidecar.Tests.Common;

/// <summary>One emulator and one sidecar in front of it, shared by the tests of a class.</summary>
public sealed class ProxyFixture : IAsyncLifetime
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
