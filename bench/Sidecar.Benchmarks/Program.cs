using BenchmarkDotNet.Running;

// Micro-benchmarks of the per-event hot paths: bytes/s and allocations per event.
//   dotnet run -c Release --project bench/Sidecar.Benchmarks -- --filter '*' --job short
// What one stream write costs Redis (the real write script, one batch at a time):
//   dotnet run -c Release --project bench/Sidecar.Benchmarks -- redis-writes [streams] [events] [batches]
if (args is ["redis-writes", .. var rest])
{
    await Sidecar.Benchmarks.RedisWriteCost.RunAsync(rest);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Sidecar.Benchmarks.SseReaderBenchmarks).Assembly).Run(args);
