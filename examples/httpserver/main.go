// Command httpserver is an HTTP server that shares its port with every other
// copy of itself, through [reuseport.Listen]. Each response names the process
// that served it, by pid and by a random id that tells copies apart where
// pids do not (every copy in its own container is pid 1), so that running
// it three times on one address shows the kernel spreading connections
// across the three:
//
//	go run ./examples/httpserver -addr 127.0.0.1:8080 &   # three times
//	for i in $(seq 9); do curl -s 127.0.0.1:8080; done
//
// curl opens a new connection each time it runs, and the kernel picks a
// socket per connection, not per request: a client that keeps its connection
// alive keeps talking to the same process.
//
// SIGINT or SIGTERM stops it without dropping a connection it accepted: it
// stops accepting, answers every connection already accepted (for at most
// -shutdown-timeout; see the drain package), and exits 0. Closing its socket
// still resets the connections waiting in that socket's accept queue, unless
// the kernel moves them to another copy (net.ipv4.tcp_migrate_req=1, which
// the server logs at start).
//
// With -handoff PATH a restart loses nothing: start the new copy with the
// same -addr and -handoff, and it takes the old copy's listening socket
// over PATH (see the handoff package); the old copy then drains and exits 0
// by itself. Each worker of a group needs its own PATH:
//
//	httpserver -addr :8080 -handoff /run/httpserver/w1.sock &
//	httpserver -addr :8080 -handoff /run/httpserver/w2.sock &
//	httpserver -addr :8080 -handoff /run/httpserver/w1.sock &   # replaces the first
//
// With -upgrade-on-hup as well, SIGHUP upgrades the server in place: it
// starts its own executable again, as the file on disk now is, with the
// same flags, which takes the socket over PATH; the old process drains
// and exits 0. Under systemd, with Type=notify, the new process becomes
// the unit's main process, so that one unit upgrades with systemctl reload;
// -fdstore keeps the socket in systemd's file descriptor store, open
// across a crash (see examples/systemd).
//
// -shutdown stdlib stops with plain http.Server.Shutdown instead of the
// drain. It loses requests on every restart and exists only so that the
// restart benchmark (bench/cmd/benchall -sections restarts) can show how many.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"os"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

func main() { command.Main(serve) }

// serve is one generation of the server, as servercmd runs it. Its log
// lines name the process by id as well as pid.
func serve(ctx context.Context, f servercmd.Flags, logger *log.Logger) error {
	pid, id := os.Getpid(), instanceID()
	logger.SetPrefix(fmt.Sprintf("%sid=%s ", logger.Prefix(), id))
	logger.Print(servercmd.MigrationNote())
	cfg := f.HandoffConfig(logger)
	cfg.FDStore = fdStore
	if upgradeOnHUP {
		cfg.UpgradeSignal = hangup // caught by Run from its start
	}
	return handoff.Run(ctx, cfg, "tcp", f.Addr, newServer(pid, id, logger, f.Shutdown))
}

// instanceID returns a random name for this process, which its log lines
// and responses carry beside the pid: every copy in its own container is
// pid 1, and the pid alone no longer tells them apart.
func instanceID() string {
	b := make([]byte, 4)
	rand.Read(b) // never returns an error
	return hex.EncodeToString(b)
}
