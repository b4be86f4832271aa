// Package bench measures package reuseport against the standard library, its
// peers and nginx. It is a module of its own so that the root module keeps
// golang.org/x/sys as its only requirement.
//
// The Listen benchmarks live in this package. BenchmarkListenClosePaired
// gives the ratios to net.Listen that hold on a busy machine;
// BenchmarkListenClose, one implementation at a time, gives allocations
// and benchstat-ready samples:
//
//	go test -run '^$' -bench 'ListenClosePaired$' -count 10 .
//	go test -run '^$' -bench 'ListenClose$' -benchmem -count 10 . | tee listen.txt
//	go tool benchstat -col /impl listen.txt
//
// Everything else (connection spread, HTTP throughput against nginx, plots)
// is run by cmd/benchall, which also regenerates BENCHMARKS.md:
//
//	go run ./cmd/benchall -out ..
package bench
