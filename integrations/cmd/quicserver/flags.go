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
	steer           bool   // steer packets by connection ID; false is the lossy control
	certFile        string // "" with keyFile "": a self-signed certificate made at start
	keyFile         string
}

// usageError marks a command line that cannot be run.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{addr: "127.0.0.1:4433", shutdownTimeout: 30 * time.Second, steer: true}
	fs := flag.NewFlagSet("quicserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: quicserver [flags]\n\nServe HTTP/3 on a UDP port that other copies of this program share.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.addr, "addr", cfg.addr, "UDP `address` to listen on, as host:port; every copy given the same address shares its port")
	fs.StringVar(&cfg.handoff, "handoff", "", "unix socket `path` for restarts: a new copy started with the same -addr and -handoff joins the port with a socket of its own, and this copy drains its connections and exits; each worker needs a path of its own")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", cfg.shutdownTimeout, "when stopping, how long to wait for the requests in progress before closing the connections")
	fs.BoolVar(&cfg.steer, "steer", cfg.steer, "steer each packet to the copy that owns its connection (steer package); false leaves it to the kernel's hash, which breaks connections whenever a copy joins or leaves (a comparison knob for tests)")
	fs.StringVar(&cfg.certFile, "cert", "", "TLS certificate `file` (PEM); without -cert and -key a self-signed certificate is made at start")
	fs.StringVar(&cfg.keyFile, "key", "", "TLS private key `file` (PEM), with -cert")

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
		return fail("unexpected argument %q: quicserver takes flags only", fs.Arg(0))
	}
	if cfg.shutdownTimeout <= 0 {
		return fail("-shutdown-timeout must be positive, got %v", cfg.shutdownTimeout)
	}
	if (cfg.certFile == "") != (cfg.keyFile == "") {
		return fail("-cert and -key go together")
	}
	return cfg, nil
}
