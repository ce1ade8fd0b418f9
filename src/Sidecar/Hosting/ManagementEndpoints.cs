using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Matching;

namespace Sidecar.Hosting;

/// <summary>Marks an endpoint as served on the management port only.</summary>
internal sealed class ManagementEndpointMetadata
{
    public static readonly ManagementEndpointMetadata Instance = new();
}

internal static class ManagementEndpointExtensions
{
    /// <summary>Serves the endpoint on the management port, and nowhere else.</summary>
    public static TBuilder RequireManagementPort<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(ManagementEndpointMetadata.Instance);
}

/// <summary>
/// Keeps the two listeners apart: management endpoints answer only on the management port, and
/// every other endpoint (the proxy's among them) only on the public port.
/// </summary>
internal sealed class ManagementPortPolicy(SidecarListeners listeners) : MatcherPolicy, IEndpointSelectorPolicy
{
    public override int Order => 0;

    public bool AppliesToEndpoints(IReadOnlyList<Endpoint> endpoints) => true;

    public Task ApplyAsync(HttpContext httpContext, CandidateSet candidates)
    {
        var onManagementPort = listeners.IsManagement(httpContext);
        for (var i = 0; i < candidates.Count; i++)
        {
            if (!candidates.IsValidCandidate(i))
            {
                continue;
            }

            var managementOnly = candidates[i].Endpoint.Metadata.GetMetadata<ManagementEndpointMetadata>() is not null;
            if (managementOnly != onManagementPort)
            {
                candidates.SetValidity(i, false);
            }
        }

        return Task.CompletedTask;
    }
}
