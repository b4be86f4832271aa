package main

import "github.com/b93f8b21/reuseport/internal/test/servercmd"

// The ways to stop serving. Only drain is lossless; stdlib is plain
// http.Server.Shutdown, kept so that a benchmark can show what it loses.
const (
	shutdownDrain  = "drain"
	shutdownStdlib = "stdlib"
)

// command is the command line; see the servercmd package.
var command = servercmd.Command{
	Name:          "httpserver",
	Summary:       "Serve HTTP on a port that other copies of this program share.",
	Addr:          "127.0.0.1:8080",
	Shutdowns:     []string{shutdownDrain, shutdownStdlib},
	ShutdownUsage: "how to stop serving: drain answers every accepted connection; stdlib is plain http.Server.Shutdown, which drops some (a comparison knob for benchmarks, not for production)",
}
