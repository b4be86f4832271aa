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
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/grpcdrain"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore the default action, so a second signal ends a stuck shutdown at once
	}()
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Stderr), os.Stderr))
}

// run is the whole program but for what belongs to the process (signals,
// the exit status): it serves until ctx is done or a successor has taken
// its socket, then drains and returns.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	pid := os.Getpid()
	logger := log.New(stderr, fmt.Sprintf("grpcserver: pid=%d ", pid), 0)
	logger.Print(migrationNote())
	hcfg := handoff.Config{
		Path:            cfg.handoff, // "" for none: a fresh socket, and only a signal stops it
		ShutdownTimeout: cfg.shutdownTimeout,
		Logf:            logger.Printf,
		OnReady: func(s handoff.Socket) {
			logger.Printf("listening on %s (reuseport: %v; socket: %v; shutdown: %s)", s.Addr, reuseport.Capabilities(), s.Origin, cfg.shutdown)
		},
	}
	s := newServer(pid)
	switch cfg.shutdown {
	case shutdownGraceful:
		return runGraceful(ctx, hcfg, cfg.addr, s)
	case shutdownStop:
		return handoff.Run(ctx, hcfg, "tcp", cfg.addr, handoff.Funcs(s.Serve, func(context.Context) error {
			s.Stop()
			return nil
		}))
	}
	return handoff.Run(ctx, hcfg, "tcp", cfg.addr, grpcdrain.NewServer(s))
}

// migrationNote says what the kernel does with the connections queued on
// this process's socket if the socket closes without being handed off: on
// a crash, a scale-down, or a restart without -handoff.
func migrationNote() string {
	on, err := reuseport.MigratesRequests()
	switch {
	case err != nil:
		return fmt.Sprintf("tcp_migrate_req unknown (%v): a copy that exits without handing off its socket resets the connections queued on it", err)
	case on:
		return "tcp_migrate_req=1: a copy that exits without handing off its socket has its queued connections moved to another copy"
	default:
		return "tcp_migrate_req=0: a copy that exits without handing off its socket resets the connections queued on it"
	}
}

// exitCode reports err and turns it into an exit status, following the flag
// package: 0 for -h, 2 for a usage error, 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2 // the flag set has printed the error and the usage already
	default:
		fmt.Fprintf(stderr, "grpcserver: %v\n", err)
		return 1
	}
}
