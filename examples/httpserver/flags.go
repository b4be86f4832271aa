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
	shutdownTimeout time.Duration
}

// usageError marks a command line that cannot be run.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{addr: "127.0.0.1:8080", shutdownTimeout: 10 * time.Second}
	fs := flag.NewFlagSet("httpserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: httpserver [flags]\n\nServe HTTP on a port that other copies of this program share.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.addr, "addr", cfg.addr, "`address` to listen on, as host:port; every copy given the same address shares its port")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", cfg.shutdownTimeout, "on SIGINT or SIGTERM, how long to wait for requests in flight before closing their connections")

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
		return fail("unexpected argument %q: httpserver takes flags only", fs.Arg(0))
	}
	if cfg.shutdownTimeout <= 0 {
		return fail("-shutdown-timeout must be positive, got %v", cfg.shutdownTimeout)
	}
	return cfg, nil
}
