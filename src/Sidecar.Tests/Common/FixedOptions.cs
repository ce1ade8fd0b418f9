using Microsoft.Extensions.Options;

namespace Sidecar.Tests.Common;

/// <summary>Options that never change, for a part built by hand rather than from a host's configuration.</summary>
internal sealed class FixedOptions<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;

    public T Get(string? name) => value;

    public IDisposable? OnChange(Action<T, string?> listener) => null;
}
