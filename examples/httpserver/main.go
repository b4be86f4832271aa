// Command httpserver is an HTTP server that shares its port with every other
// copy of itself, through [reuseport.Listen]. Each response names the process
// that served it, so that running it three times on one address shows the
// kernel spreading connections across the three:
//
//	go run ./examples/httpserver -addr 127.0.0.1:8080 &   # three times
//	for i in $(seq 9); do curl -s 127.0.0.1:8080; done
//
// curl opens a new connection each time it runs, and the kernel picks a
// socket per connection, not per request: a client that keeps its connection
// alive keeps talking to the same process.
//
// SIGINT or SIGTERM stops it gracefully: it stops accepting, lets the
// requests in flight finish (for at most -shutdown-timeout), and exits 0.
// Closing its socket still resets any connection that was waiting in that
// socket's accept queue; restarting without losing those needs the listening
// socket handed to a successor instead, which this example does not do yet.
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
// the exit status), so that a test can call it: it serves until ctx is done,
// then shuts down gracefully.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ln, err := reuseport.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	pid := os.Getpid()
	logger := log.New(stderr, fmt.Sprintf("httpserver: pid=%d ", pid), 0)
	logger.Printf("listening on %s (reuseport: %v)", ln.Addr(), reuseport.Capabilities())
	return serve(ctx, newServer(pid, logger), ln, cfg.shutdownTimeout)
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
		fmt.Fprintf(stderr, "httpserver: %v\n", err)
		return 1
	}
}
