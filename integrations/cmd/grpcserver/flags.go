package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// config is what the command line asks for.
type config struct {
	addr            string
	handoff         string // unix socket path shared by the generations of one worker; "" for none
	shutdownTimeout time.Duration
	shutdown        string // shutdownDrain, shutdownGraceful or shutdownStop
}

// The ways to stop serving. Only drain is lossless; the others are kept so
// that tests and benchmarks can show what they lose.
const (
	// shutdownDrain stops through handoff.Run and grpcdrain: stop
	// accepting, wait until grpc-go has taken up every accepted
	// connection, then GracefulStop.
	shutdownDrain = "drain"
	// shutdownGraceful calls GracefulStop as soon as a successor serves
	// or a signal comes, as most servers do: a connection accepted just
	// before it is closed unanswered.
	shutdownGraceful = "graceful"
	// shutdownStop calls Stop, which closes every connection and fails
	// the RPCs in progress.
	shutdownStop = "stop"
)

// usageError marks a command line that cannot be run.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{addr: "127.0.0.1:50051", shutdownTimeout: 30 * time.Second, shutdown: shutdownDrain}
	fs := flag.NewFlagSet("grpcserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: grpcserver [flags]\n\nServe gRPC health checks on a port that other copies of this program share.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.addr, "addr", cfg.addr, "`address` to listen on, as host:port; every copy given the same address shares its port")
	fs.StringVar(&cfg.handoff, "handoff", "", "unix socket `path` for lossless restarts: a new copy started with the same -addr and -handoff takes this copy's socket, and this copy drains and exits; each worker needs a path of its own")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", cfg.shutdownTimeout, "when stopping, how long to wait for the RPCs in progress before cancelling them")
	fs.StringVar(&cfg.shutdown, "shutdown", cfg.shutdown, "how to stop serving: drain loses nothing; graceful is GracefulStop without the barrier, stop is Stop (comparison knobs for tests, not for production)")

	// fail reports a bad command line the way the flag set reports its own
	// parse errors: the error, then the usage.
	fail := func(format string, args ...any) (config, error) {
		err := fmt.Errorf(format, args...)
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return config{}, &usageError{err}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, &usageError{err}
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q: grpcserver takes flags only", fs.Arg(0))
	}
	if cfg.shutdownTimeout <= 0 {
		return fail("-shutdown-timeout must be positive, got %v", cfg.shutdownTimeout)
	}
	switch cfg.shutdown {
	case shutdownDrain, shutdownGraceful, shutdownStop:
	default:
		return fail("-shutdown must be %s, %s or %s, got %q", shutdownDrain, shutdownGraceful, shutdownStop, cfg.shutdown)
	}
	return cfg, nil
}
