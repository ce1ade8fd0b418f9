using BenchmarkDotNet.Running;

// Micro-benchmarks of the per-event hot paths: bytes/s and allocations per event.
//   dotnet run -c Release --project bench/Sidecar.Benchmarks -- --filter '*' --job short
BenchmarkSwitcher.FromAssembly(typeof(Sidecar.Benchmarks.SseReaderBenchmarks).Assembly).Run(args);
