using Yarp.ReverseProxy.Configuration;

// Plain YARP with none of the sidecar's features: the peer the sidecar is measured against.
//   dotnet PlainYarp.dll --urls http://127.0.0.1:8090 --Upstream=http://127.0.0.1:3000
var builder = WebApplication.CreateBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var upstream = builder.Configuration["Upstream"] ?? "http://127.0.0.1:3000";
builder.Services.AddReverseProxy().LoadFromMemory(
    [new RouteConfig { RouteId = "all", ClusterId = "upstream", Match = new RouteMatch { Path = "{**catch-all}" } }],
    [new ClusterConfig { ClusterId = "upstream", Destinations = new Dictionary<string, DestinationConfig> { ["upstream"] = new() { Address = upstream } } }]);
var app = builder.Build();
app.MapGet("/__ready", () => "ready");
app.MapReverseProxy();
app.Run();
