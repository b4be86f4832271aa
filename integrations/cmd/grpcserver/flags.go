package main

import "github.com/b93f8b21/reuseport/internal/test/servercmd"

// The ways to stop serving. Only drain is lossless; the others are kept so
// that tests and benchmarks can show what they lose.
const (
	// shutdownDrain stops through handoff.Run and grpcdrain: stop
	// accepting, wait until grpc-go has taken up every accepted
	// connection, then GracefulStop.
	shutdownDrain = "drain"
	// shutdownGraceful calls GracefulStop as soon as a successor serves
	// or a signal comes, as most servers do: a connection accepted just
	// before it is closed unanswered.
	shutdownGraceful = "graceful"
	// shutdownStop calls Stop, which closes every connection and fails
	// the RPCs in progress.
	shutdownStop = "stop"
)

// command is the command line; see the servercmd package.
var command = servercmd.Command{
	Name:                 "grpcserver",
	Summary:              "Serve gRPC health checks on a port that other copies of this program share.",
	Addr:                 "127.0.0.1:50051",
	Shutdowns:            []string{shutdownDrain, shutdownGraceful, shutdownStop},
	ShutdownTimeoutUsage: "when stopping, how long to wait for the RPCs in progress before cancelling them",
	ShutdownUsage:        "how to stop serving: drain loses nothing; graceful is GracefulStop without the barrier, stop is Stop (comparison knobs for tests, not for production)",
}
