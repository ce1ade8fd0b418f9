using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Sidecar.Streams;

/// <summary>This replica's name in the store: which replica produces (and holds the lease of) a stream.</summary>
internal sealed class SidecarReplica(IOptions<ResumeOptions> options)
{
    public string Id { get; } = string.IsNullOrWhiteSpace(options.Value.ReplicaId)
        ? $"{Environment.MachineName}-{RandomNumberGenerator.GetHexString(8, lowercase: true)}"
        : options.Value.ReplicaId;
}
