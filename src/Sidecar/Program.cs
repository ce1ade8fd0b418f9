using Sidecar.Configuration;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSidecar(builder.Configuration);

var app = builder.Build();
app.MapSidecar();
app.Run();

/// <summary>The sidecar's entry point (public for test hosts).</summary>
public partial class Program;
