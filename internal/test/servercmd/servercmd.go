// Package servercmd is the command line that the server commands of this
// repository share (examples/httpserver, and grpcserver and fasthttpserver
// in integrations/cmd): the flags -addr, -handoff, -shutdown-timeout and
// -shutdown, their checks, the log prefix, the exit status, and the life
// of one server generation through [handoff.Run]. A command keeps what is
// its own: its server, its ways of stopping, its usage text.
//
// A command's main is then, in outline:
//
//	var command = servercmd.Command{Name: "httpserver", ...}
//
//	func main() { command.Main(serve) }
//
//	func serve(ctx context.Context, f servercmd.Flags, logger *log.Logger) error {
//		return servercmd.Serve(ctx, f, logger, newServer(f.Shutdown))
//	}
package servercmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/handoff"
)

// Command describes the command line of one server command.
type Command struct {
	// Name is the program's name, as usage and error messages give it.
	Name string
	// Summary is what the usage message says the program does, after the
	// synopsis.
	Summary string
	// Addr is the default of -addr.
	Addr string
	// Shutdowns lists the values -shutdown accepts; the first is the
	// default. Empty for a command with one way of stopping, which then
	// has no -shutdown flag.
	Shutdowns []string
	// ShutdownUsage is the help text of -shutdown, which says what each
	// way of stopping does.
	ShutdownUsage string
	// HandoffUsage, if set, is the help text of -handoff; by default it
	// says that a new copy takes this copy's socket.
	HandoffUsage string
	// ShutdownTimeoutUsage, if set, is the help text of -shutdown-timeout;
	// by default it speaks of the connections already accepted.
	ShutdownTimeoutUsage string
	// MoreFlags, if set, defines the command's own flags on fs, beside
	// the shared ones, and returns a check to run once they are parsed,
	// whose error Parse reports as a usage error; the check may be nil.
	MoreFlags func(fs *flag.FlagSet) (check func() error)
}

// Flags is what a command line asks for.
type Flags struct {
	Addr            string        // host:port to listen on
	Handoff         string        // unix socket path shared by the generations of one worker; "" for none
	ShutdownTimeout time.Duration // positive
	Shutdown        string        // one of Command.Shutdowns
}

// UsageError is the error Parse returns for a command line that cannot be
// run, once it has printed the error and the usage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Parse parses args, the command line without the program name, and
// reports a bad one on stderr as the flag package does: the error, then
// the usage. It returns [flag.ErrHelp] for -h and a *[UsageError] for a
// command line that cannot be run.
func (c *Command) Parse(args []string, stderr io.Writer) (Flags, error) {
	f := Flags{Addr: c.Addr, ShutdownTimeout: 30 * time.Second}
	if len(c.Shutdowns) > 0 {
		f.Shutdown = c.Shutdowns[0]
	}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\n%s\n\n", c.Name, c.Summary)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.Addr, "addr", f.Addr, "`address` to listen on, as host:port; every copy given the same address shares its port")
	handoffUsage := c.HandoffUsage
	if handoffUsage == "" {
		handoffUsage = "unix socket `path` for lossless restarts: a new copy started with the same -addr and -handoff takes this copy's socket, and this copy drains and exits; each worker needs a path of its own"
	}
	fs.StringVar(&f.Handoff, "handoff", "", handoffUsage)
	timeoutUsage := c.ShutdownTimeoutUsage
	if timeoutUsage == "" {
		timeoutUsage = "when stopping, how long to wait for the connections already accepted before closing them"
	}
	fs.DurationVar(&f.ShutdownTimeout, "shutdown-timeout", f.ShutdownTimeout, timeoutUsage)
	if len(c.Shutdowns) > 0 {
		fs.StringVar(&f.Shutdown, "shutdown", f.Shutdown, c.ShutdownUsage)
	}
	var check func() error
	if c.MoreFlags != nil {
		check = c.MoreFlags(fs)
	}

	fail := func(format string, args ...any) (Flags, error) {
		err := fmt.Errorf(format, args...)
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return Flags{}, &UsageError{err}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Flags{}, err
		}
		return Flags{}, &UsageError{err} // the flag set has printed it
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q: %s takes flags only", fs.Arg(0), c.Name)
	}
	if f.ShutdownTimeout <= 0 {
		return fail("-shutdown-timeout must be positive, got %v", f.ShutdownTimeout)
	}
	if check != nil {
		if err := check(); err != nil {
			return fail("%v", err)
		}
	}
	if len(c.Shutdowns) == 0 {
		return f, nil
	}
	for _, s := range c.Shutdowns {
		if f.Shutdown == s {
			return f, nil
		}
	}
	return fail("-shutdown must be %s, got %q", oneOf(c.Shutdowns), f.Shutdown)
}

// oneOf lists choices as a sentence does: "a", "a or b", "a, b or c".
func oneOf(choices []string) string {
	if len(choices) == 1 {
		return choices[0]
	}
	last := len(choices) - 1
	return strings.Join(choices[:last], ", ") + " or " + choices[last]
}

// ServeFunc runs one generation of a command's server with the flags of
// its command line, logging through logger, until ctx is done or a
// successor has taken its socket; then it drains and returns.
type ServeFunc func(ctx context.Context, f Flags, logger *log.Logger) error

// Run is the whole program but for what belongs to the process (signals,
// the exit status), so that a test can call it: it parses args, the
// command line without the program name, and runs serve with a logger
// whose lines start with "NAME: pid=PID ".
func (c *Command) Run(ctx context.Context, args []string, stderr io.Writer, serve ServeFunc) error {
	f, err := c.Parse(args, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, f, log.New(stderr, fmt.Sprintf("%s: pid=%d ", c.Name, os.Getpid()), 0))
}

// Main is the program: Run with the process's command line, stderr, and a
// context that SIGINT or SIGTERM cancels; then it exits, with status 0
// for no error and for -h, 2 for a *[UsageError] (reported already), and
// 1 for any other, which it reports on stderr. After the first signal a
// second has its default action, so that it ends a stuck shutdown at
// once.
func (c *Command) Main(serve ServeFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(c.exitCode(c.Run(ctx, os.Args[1:], os.Stderr, serve), os.Stderr))
}

// exitCode reports err and turns it into an exit status, as Main says,
// following the flag package.
func (c *Command) exitCode(err error, stderr io.Writer) int {
	var usage *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 1
	}
}

// MigrationNote says what the kernel does with the connections queued on
// this process's socket if the socket closes without being handed off:
// on a crash, a scale-down, or a restart without -handoff.
func MigrationNote() string {
	if reuseport.Capabilities().MigratesRequests {
		return "tcp_migrate_req=1: a copy that exits without handing off its socket has its queued connections moved to another copy (what it had accepted and not answered is still lost)"
	}
	return "tcp_migrate_req=0 or absent: a copy that exits without handing off its socket resets the connections queued on it (sysctl net.ipv4.tcp_migrate_req=1 moves them to another copy instead, on Linux 5.14 and later)"
}

// HandoffConfig is the handoff.RunConfig a command runs with: the path
// and timeout of f, systemd socket activation with a path, records through [Slog] of logger (among them, once it
// serves, "handoff: serving" with the socket's origin=fresh, inherited or
// activated), and, once it serves, the line "listening on ADDR
// (reuseport: …; shutdown: MODE)", which tests and supervisors wait for. A
// command that calls handoff.Run (or handoff.Start) itself, for another
// network or a way of stopping of its own, starts from it.
func (f Flags) HandoffConfig(logger *log.Logger) handoff.RunConfig {
	return handoff.RunConfig{
		Config: handoff.Config{
			Path: f.Handoff, // "" for none: a fresh socket, and only a signal stops it
			// The commands are meant for systemd units, socket-activated
			// ones among them (examples/systemd): with a handoff, they take
			// the sockets systemd passes. Activation needs a Path.
			Activation: f.Handoff != "",
			Logger:     Slog(logger),
		},
		ShutdownTimeout: f.ShutdownTimeout,
		OnReady: func(addr net.Addr) {
			logger.Printf("listening on %s (reuseport: %v; shutdown: %s)", addr, reuseport.Capabilities(), f.Shutdown)
		},
	}
}

// Slog returns a *slog.Logger whose records are text lines written through
// logger, so that they carry its prefix, without a time.
func Slog(logger *log.Logger) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{logger}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// logWriter writes each record the text handler makes, in one Write, as
// a line of l.
type logWriter struct{ l *log.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Print(string(p))
	return len(p), nil
}

// Serve is the life of one generation of a command's server: it logs
// [MigrationNote], then runs srv with [handoff.Run] on TCP address f.Addr
// and f.HandoffConfig(logger), until ctx is done or a successor has taken
// the socket, and drains.
func Serve(ctx context.Context, f Flags, logger *log.Logger, srv handoff.Server) error {
	logger.Print(MigrationNote())
	return handoff.Run(ctx, f.HandoffConfig(logger), "tcp", f.Addr, srv)
}
