package main

import "github.com/b93f8b21/reuseport/internal/test/servercmd"

// The ways to stop serving. Only drain is lossless; native is plain
// fasthttp.Server.ShutdownWithContext, kept so that a test can show what it
// loses.
const (
	shutdownDrain  = "drain"
	shutdownNative = "native"
)

// command is the command line; see the servercmd package.
var command = servercmd.Command{
	Name:          "fasthttpserver",
	Summary:       "Serve HTTP with fasthttp on a port that other copies of this program share.",
	Addr:          "127.0.0.1:8080",
	Shutdowns:     []string{shutdownDrain, shutdownNative},
	ShutdownUsage: "how to stop serving: drain answers every request on every accepted connection; native is plain fasthttp ShutdownWithContext, which drops some on keep-alive connections (a comparison knob for tests, not for production)",
}
