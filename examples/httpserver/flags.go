package main

import (
	"errors"
	"flag"

	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

// The ways to stop serving. Only drain is lossless; stdlib is plain
// http.Server.Shutdown, kept so that a benchmark can show what it loses.
const (
	shutdownDrain  = "drain"
	shutdownStdlib = "stdlib"
)

// The flags of this command beside servercmd's, for one systemd unit that
// upgrades in place (examples/systemd/httpserver.service); Parse sets them.
var (
	upgradeOnHUP bool // -upgrade-on-hup: handoff.RunConfig.UpgradeSignal = SIGHUP
	fdStore      bool // -fdstore: handoff.Config.FDStore
)

// command is the command line; see the servercmd package.
var command = servercmd.Command{
	Name:          "httpserver",
	Summary:       "Serve HTTP on a port that other copies of this program share.",
	Addr:          "127.0.0.1:8080",
	Shutdowns:     []string{shutdownDrain, shutdownStdlib},
	ShutdownUsage: "how to stop serving: drain answers every accepted connection; stdlib is plain http.Server.Shutdown, which drops some (a comparison knob for benchmarks, not for production)",
	MoreFlags:     moreFlags,
}

func moreFlags(fs *flag.FlagSet) (check func() error) {
	fs.BoolVar(&upgradeOnHUP, "upgrade-on-hup", false, "on SIGHUP, start this program's executable again, as the file on disk now is, with the same flags, as the successor on -handoff, and drain once it serves: one systemd unit upgrades with systemctl reload (needs -handoff; not where there is no SIGHUP)")
	fs.BoolVar(&fdStore, "fdstore", false, "store the listening socket in systemd's file descriptor store (Type=notify and FileDescriptorStoreMax=), so that it stays open, with the connections queued on it, while systemd restarts a crashed server (needs -handoff)")
	handoffPath := fs.Lookup("handoff")
	return func() error {
		switch {
		case upgradeOnHUP && handoffPath.Value.String() == "":
			return errors.New("-upgrade-on-hup needs -handoff: the new process takes the socket over that path")
		case upgradeOnHUP && hangup == nil:
			return errors.New("-upgrade-on-hup: " + noHangup)
		case fdStore && handoffPath.Value.String() == "":
			return errors.New("-fdstore needs -handoff: stored sockets come back as activated ones, which the server takes only with a handoff path")
		}
		return nil
	}
}
