package main

import (
	"errors"
	"flag"

	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

// command is this program's command line: the flags every server command
// of the repository shares (without -shutdown: HTTP/3's graceful shutdown
// is the only way this one stops), and its own.
var command = servercmd.Command{
	Name:                 "quicserver",
	Summary:              "Serve HTTP/3 on a UDP port that other copies of this program share.",
	Addr:                 "127.0.0.1:4433",
	HandoffUsage:         "unix socket `path` for restarts: a new copy started with the same -addr and -handoff joins the port with a socket of its own, and this copy drains its connections and exits; each worker needs a path of its own",
	ShutdownTimeoutUsage: "when stopping, how long to wait for the requests in progress before closing the connections",
	MoreFlags:            moreFlags,
}

// own is what this command's own flags ask for, set by each Parse.
var own struct {
	steer    bool   // steer packets by connection ID; false is the lossy control
	certFile string // "" with keyFile "": a self-signed certificate made at start
	keyFile  string
}

func moreFlags(fs *flag.FlagSet) func() error {
	fs.BoolVar(&own.steer, "steer", true, "steer each packet to the copy that owns its connection (steer package); false leaves it to the kernel's hash, which breaks connections whenever a copy joins or leaves (a comparison knob for tests)")
	fs.StringVar(&own.certFile, "cert", "", "TLS certificate `file` (PEM); without -cert and -key a self-signed certificate is made at start")
	fs.StringVar(&own.keyFile, "key", "", "TLS private key `file` (PEM), with -cert")
	return func() error {
		if (own.certFile == "") != (own.keyFile == "") {
			return errors.New("-cert and -key go together")
		}
		return nil
	}
}
