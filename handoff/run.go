package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/drain"
)

// RunConfig configures [Run]: the [Config] of its handoff, and what only
// Run uses. Its zero value is valid: no handoff, only ctx stops the server.
type RunConfig struct {
	Config

	// ShutdownTimeout bounds the graceful stop of the server. Zero means
	// 30 seconds.
	ShutdownTimeout time.Duration

	// OnReady, if set, is called once the server serves and the
	// predecessor, if any, has been told to stop, with the local address
	// it serves on: the moment to tell a supervisor that the process is
	// ready (systemd's sd_notify READY=1).
	OnReady func(net.Addr)
}

const defaultShutdownTimeout = 30 * time.Second

// A Server serves the connections it accepts from a listener until it is
// shut down: the two things [Run] needs of a server. [*http.Server] and
// [*drain.Server] are Servers; [Funcs] makes one of any other server.
//
// Serve must return once the listener's Accept fails with an error that
// wraps [net.ErrClosed], or once Shutdown has been called. Shutdown must
// answer the connections Serve accepted and return once they are done, or
// return ctx.Err() when ctx ends first. What it does with a connection idle
// between requests decides whether a keep-alive client loses a request
// (see the drain package). If the Server also has a Close method (it is an
// [io.Closer]), Run calls it when Shutdown fails.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Funcs returns a [Server] whose Serve and Shutdown methods call serve and
// shutdown. For a grpc-go server s, for example:
//
//	handoff.Funcs(s.Serve, func(ctx context.Context) error {
//		stopped := make(chan struct{})
//		go func() { s.GracefulStop(); close(stopped) }()
//		select {
//		case <-stopped:
//			return nil
//		case <-ctx.Done():
//			s.Stop()
//			return ctx.Err()
//		}
//	})
func Funcs(serve func(net.Listener) error, shutdown func(context.Context) error) Server {
	return funcs{serve, shutdown}
}

type funcs struct {
	serve    func(net.Listener) error
	shutdown func(context.Context) error
}

func (f funcs) Serve(ln net.Listener) error        { return f.serve(ln) }
func (f funcs) Shutdown(ctx context.Context) error { return f.shutdown(ctx) }

// Run is the whole life of one generation of a server that restarts without
// losing a connection. It listens on network and address (an inherited,
// activated or fresh socket, as [Handoff.Listen] chooses), serves srv on it,
// and calls [Handoff.Ready], which tells the predecessor on cfg.Path, if
// any, to stop. It serves until a successor takes the socket over or ctx
// ends, then:
//
//  1. stops accepting, closing only its own descriptor, so that the
//     connections queued on the socket go to the successor;
//  2. waits until srv has taken up every connection it accepted (see
//     [drain.Listener.WaitClaimed]), so that srv's graceful stop cannot
//     drop one it had not registered yet;
//  3. calls srv.Shutdown, bounded by cfg.ShutdownTimeout, and srv.Close
//     if that fails and srv has one.
//
// Run returns nil once srv has stopped gracefully, whichever of the two
// stopped it. It returns an error if it could not listen, if Ready failed
// (the predecessor then goes on serving), if srv.Serve failed on its own,
// if srv.Shutdown failed (the error wraps Shutdown's, and speaks of a
// timeout only if cfg.ShutdownTimeout expired), or if the handoff could
// not be closed.
//
// An [*http.Server] is served through [drain.NewServer], whose drain
// answers every request on every connection it accepted, keep-alive ones
// included; [http.Server.Shutdown] alone does not. Run never writes to
// the caller's http.Server: it serves a new one with the same exported
// fields, so the same *http.Server may be passed to Run again. A copy
// cannot carry what http.Server keeps unexported: functions registered
// with [http.Server.RegisterOnShutdown] (golang.org/x/net/http2's
// ConfigureServer registers one) are not called; wrap the server in
// [drain.NewServer] yourself to keep them, and pass the [*drain.Server].
//
// With an empty cfg.Path there is no handoff: Run binds a fresh socket
// with cfg.ListenConfig and only ctx stops it.
func Run(ctx context.Context, cfg RunConfig, network, address string, srv Server) error {
	if err := cfg.check(srv); err != nil {
		return err
	}
	if hs, ok := srv.(*http.Server); ok {
		srv = drain.NewServer(copyServer(hs))
	}
	log := logger(cfg.Logger)
	g, err := startGeneration(ctx, cfg.Config, log, network, address)
	if err != nil {
		return err
	}
	dl := drain.NewListener(g.ln)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(dl) }()

	var errs []error
	if err := g.ready(); err != nil {
		// The predecessor goes on serving; what this process accepted
		// meanwhile still gets its answer below.
		errs = append(errs, edgeError(err))
		log.Warn("handoff: taking over from the predecessor failed", "err", err)
	} else {
		log.Info("handoff: serving", "network", network, "addr", g.ln.Addr(), "origin", g.origin)
		if cfg.OnReady != nil {
			cfg.OnReady(g.ln.Addr())
		}
		waitForStop(ctx, log, served, g.successor())
	}
	timeout := cfg.ShutdownTimeout
	if timeout == 0 {
		timeout = defaultShutdownTimeout
	}
	errs = append(errs, stopServing(ctx, timeout, dl, srv, served), g.close())
	return errors.Join(errs...)
}

func (cfg *RunConfig) check(srv Server) error {
	switch {
	case srv == nil:
		return errors.New("handoff: Run needs a Server, got nil")
	case cfg.ShutdownTimeout < 0:
		return fmt.Errorf("handoff: RunConfig.ShutdownTimeout must not be negative, got %v", cfg.ShutdownTimeout)
	case cfg.Activation && cfg.Path == "":
		return errors.New("handoff: Config.Activation needs a Config.Path")
	}
	return nil
}

// copyServer returns a new http.Server with the exported fields of hs.
// Reflection copies the fields a later Go release adds, too.
func copyServer(hs *http.Server) *http.Server {
	c := new(http.Server)
	src, dst := reflect.ValueOf(hs).Elem(), reflect.ValueOf(c).Elem()
	for i := range src.NumField() {
		if src.Type().Field(i).IsExported() {
			dst.Field(i).Set(src.Field(i))
		}
	}
	return c
}

// generation is the socket Run serves on and the handoff it came from,
// if any.
type generation struct {
	ln     net.Listener
	origin origin
	h      *Handoff // nil without a Path
}

// startGeneration starts the handoff, if cfg has a Path, and listens.
func startGeneration(ctx context.Context, cfg Config, log *slog.Logger, network, address string) (*generation, error) {
	if cfg.Path == "" {
		lc := cfg.ListenConfig
		if lc == nil {
			lc = new(reuseport.ListenConfig)
		}
		ln, err := lc.Listen(ctx, network, address)
		if err != nil {
			return nil, err
		}
		// As Handoff.Listen logs it.
		log.Info("handoff: listening", "network", network, "addr", ln.Addr(), "origin", fresh)
		return &generation{ln: ln, origin: fresh}, nil
	}
	cfg.Logger = log
	h, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ln, err := h.Listen(ctx, network, address)
	if err != nil {
		return nil, errors.Join(err, h.Close())
	}
	return &generation{ln: ln, origin: h.lastOrigin(), h: h}, nil
}

func (g *generation) ready() error {
	if g.h == nil {
		return nil
	}
	return g.h.readyInner()
}

// successor is closed once a successor serves; nil (never ready) without
// a handoff.
func (g *generation) successor() <-chan struct{} {
	if g.h == nil {
		return nil
	}
	return g.h.Done()
}

// close stops answering on Path if no successor took over; the listener
// itself is closed by the shutdown.
func (g *generation) close() error {
	if g.h == nil {
		return nil
	}
	return g.h.Close()
}

// waitForStop waits for a reason to stop: Serve returned, ctx ended, or a
// successor took over.
func waitForStop(ctx context.Context, log *slog.Logger, served chan error, successor <-chan struct{}) {
	select {
	case err := <-served:
		served <- err // read again by stopServing
		log.Warn("handoff: shutting down: Serve returned", "err", err)
	case <-ctx.Done():
		log.Info("handoff: shutting down: the context ended", "cause", context.Cause(ctx))
	case <-successor:
		log.Info("handoff: shutting down: a successor took over the socket")
	}
}

// stopServing closes the listener, stops srv gracefully within timeout,
// and collects what Serve returned.
func stopServing(ctx context.Context, timeout time.Duration, dl *drain.Listener, srv Server, served chan error) error {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	dl.Close()
	err := dl.WaitClaimed(stopCtx)
	if err == nil {
		err = srv.Shutdown(stopCtx)
	}
	var errs []error
	if err != nil {
		errs = append(errs, stopError(stopCtx, timeout, srv, err))
	}
	return errors.Join(append(errs, serveResult(stopCtx, timeout, served))...)
}

// stopError says why the graceful stop failed, after closing srv if it
// can be closed. It speaks of a timeout only if stopCtx's deadline passed.
func stopError(stopCtx context.Context, timeout time.Duration, srv Server, err error) error {
	if errors.Is(stopCtx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("handoff: graceful stop did not finish within RunConfig.ShutdownTimeout (%v): %w", timeout, err)
	} else {
		err = fmt.Errorf("handoff: graceful stop failed: %w", err)
	}
	if c, ok := srv.(io.Closer); ok {
		if cerr := c.Close(); cerr != nil {
			return errors.Join(err, fmt.Errorf("handoff: closing the server: %w", cerr))
		}
	}
	return err
}

// serveResult returns what Serve returned, unless that only says it was
// stopped. Serve returned when the listener closed, or at the latest when
// Shutdown did; look before waiting, as stopCtx may have ended.
func serveResult(stopCtx context.Context, timeout time.Duration, served chan error) error {
	var err error
	select {
	case err = <-served:
	default:
		select {
		case err = <-served:
		case <-stopCtx.Done():
			return fmt.Errorf("handoff: Serve had not returned %v after the listener closed", timeout)
		}
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
