// Command grpcserver is a gRPC server that shares its port with every other
// copy of itself, through the reuseport package, and restarts without
// losing an RPC. It serves the standard health service
// (grpc.health.v1.Health), answering SERVING, and names the process that
// answered in the "pid" response header:
//
//	go run ./cmd/grpcserver -addr 127.0.0.1:50051 &   # several times
//	grpcurl -plaintext -v 127.0.0.1:50051 grpc.health.v1.Health/Check
//
// With -handoff PATH a restart loses nothing: start the new copy with the
// same -addr and -handoff, and it takes the old copy's listening socket
// over PATH (see the handoff package); the old copy then drains and exits 0
// by itself. Each worker of a group needs its own PATH:
//
//	grpcserver -addr :50051 -handoff /run/grpcserver/w1.sock &
//	grpcserver -addr :50051 -handoff /run/grpcserver/w2.sock &
//	grpcserver -addr :50051 -handoff /run/grpcserver/w1.sock &   # replaces the first
//
// The old copy drains through the grpcdrain package: it stops accepting,
// waits until grpc-go has taken up every connection it accepted, and
// stops with GracefulStop, whose GOAWAY moves each client to a new
// connection and so to the successor. SIGINT or SIGTERM drains the same
// way and exits 0; closing the socket then still resets the connections
// waiting in its accept queue, unless the kernel moves them to another
// copy (net.ipv4.tcp_migrate_req=1).
//
// -shutdown graceful and -shutdown stop are the usual ways to stop a
// grpc-go server, kept so that tests can show what they lose: GracefulStop
// called at once drops a connection accepted just before it, and Stop
// fails the RPCs in progress.
package main

import (
	"context"
	"log"
	"os"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/grpcdrain"
	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

func main() { command.Main(serve) }

// serve is one generation of the server, as servercmd runs it, stopping
// as -shutdown says.
func serve(ctx context.Context, f servercmd.Flags, logger *log.Logger) error {
	s := newServer(os.Getpid())
	switch f.Shutdown {
	case shutdownGraceful:
		logger.Print(servercmd.MigrationNote())
		return runGraceful(ctx, f.HandoffConfig(logger), f.Addr, s)
	case shutdownStop:
		return servercmd.Serve(ctx, f, logger, handoff.Funcs(s.Serve, func(context.Context) error {
			s.Stop()
			return nil
		}))
	}
	return servercmd.Serve(ctx, f, logger, grpcdrain.NewServer(s))
}
