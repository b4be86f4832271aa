package main

import (
	"errors"
	"flag"

	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

// command is this program's command line: the flags every server command
// of the repository shares (without -shutdown: the drain is the only way
// this one stops), and its own.
var command = servercmd.Command{
	Name:                 "webserver",
	Summary:              "Serve HTTP/1.1 and HTTP/2 over TLS on a TCP port, HTTP/3 on the same UDP port, and metrics on another port, all restarted through one handoff.",
	Addr:                 "127.0.0.1:8443",
	HandoffUsage:         "unix socket `path` for restarts: a new copy started with the same flags takes all three sockets (TCP, UDP, metrics) from this one, which then drains and exits",
	ShutdownTimeoutUsage: "when stopping, how long to wait for the connections in progress, on every socket together, before closing them",
	MoreFlags:            moreFlags,
}

// own is what this command's own flags ask for, set by each Parse.
var own struct {
	metricsAddr string
	certFile    string // "" with keyFile "": a self-signed certificate made at start
	keyFile     string
}

func moreFlags(fs *flag.FlagSet) func() error {
	fs.StringVar(&own.metricsAddr, "metrics-addr", "127.0.0.1:9090", "`host:port` of the plain-HTTP metrics endpoint (/metrics, Prometheus text format)")
	fs.StringVar(&own.certFile, "cert", "", "TLS certificate `file` (PEM); without -cert and -key a self-signed certificate is made at start")
	fs.StringVar(&own.keyFile, "key", "", "TLS private key `file` (PEM), with -cert")
	return func() error {
		if (own.certFile == "") != (own.keyFile == "") {
			return errors.New("-cert and -key go together")
		}
		return nil
	}
}
