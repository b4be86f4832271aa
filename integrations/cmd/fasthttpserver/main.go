// Command fasthttpserver is a fasthttp server that restarts without losing
// a request, keep-alive clients included. It shares its port with every
// other copy of itself (see reuseport.Listen) and answers every request
// with 200 and the pid of the process that served it:
//
//	go run ./cmd/fasthttpserver -addr 127.0.0.1:8080 -handoff /tmp/w1.sock &
//	curl -s 127.0.0.1:8080   # hello from pid=…
//
// Starting another copy with the same -addr and -handoff replaces it: the
// new copy takes the listening socket over PATH (see the handoff package),
// and the old one drains (see the fasthttpdrain package) and exits 0 by
// itself. Each worker of a group needs its own PATH. SIGINT or SIGTERM
// drains it too, and closes its socket; without a successor holding the
// socket, the connections queued on it are reset (unless
// net.ipv4.tcp_migrate_req=1 moves them to another copy).
//
// -shutdown native stops with fasthttp.Server.ShutdownWithContext instead
// of the drain. It loses requests sent on keep-alive connections at each
// restart and exists only so that tests and benchmarks can show how many.
//
// The flags are those of examples/httpserver.
package main

import (
	"context"
	"log"
	"os"

	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

func main() { command.Main(serve) }

// serve is one generation of the server, as servercmd runs it.
func serve(ctx context.Context, f servercmd.Flags, logger *log.Logger) error {
	return servercmd.Serve(ctx, f, logger, newServer(os.Getpid(), logger, f.Shutdown))
}
