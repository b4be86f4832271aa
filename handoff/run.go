package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/drain"
)

// DefaultShutdownTimeout bounds the graceful stop in [Run] when
// Config.ShutdownTimeout is zero.
const DefaultShutdownTimeout = 30 * time.Second

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
// or if the graceful stop timed out.
//
// An [*http.Server] is served through [drain.NewServer], whose drain
// answers every request on every connection it accepted, keep-alive ones
// included; [http.Server.Shutdown] alone does not.
//
// With an empty cfg.Path there is no handoff: Run binds a fresh socket
// with cfg.ListenConfig and only ctx stops it.
func Run(ctx context.Context, cfg Config, network, address string, srv Server) error {
	if srv == nil {
		return errors.New("handoff: Run needs a Server, got nil")
	}
	if cfg.ShutdownTimeout < 0 {
		return fmt.Errorf("handoff: Config.ShutdownTimeout must not be negative, got %v", cfg.ShutdownTimeout)
	}
	if hs, ok := srv.(*http.Server); ok {
		srv = drain.NewServer(hs)
	}

	var (
		ln        net.Listener
		sock      Socket
		ready     = func() error { return nil }
		successor <-chan struct{}
		logf      = func(format string, args ...any) {
			if cfg.Logf != nil {
				cfg.Logf("handoff: "+format, args...)
			}
		}
	)
	if cfg.Path == "" {
		lc := cfg.ListenConfig
		if lc == nil {
			lc = new(reuseport.ListenConfig)
		}
		var err error
		if ln, err = lc.Listen(ctx, network, address); err != nil {
			return err
		}
		sock = Socket{Network: network, Addr: ln.Addr(), Origin: Fresh}
	} else {
		h, err := Start(ctx, cfg)
		if err != nil {
			return err
		}
		// Stops answering on Path if no successor took over; the listener
		// itself is closed by the shutdown.
		defer h.Close()
		if ln, err = h.Listen(network, address); err != nil {
			return err
		}
		socks := h.Sockets()
		sock = socks[len(socks)-1]
		ready, successor = h.readyInner, h.Done()
	}

	dl := drain.NewListener(ln)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(dl) }()

	var errs []error
	if err := ready(); err != nil {
		// The predecessor goes on serving; what this process accepted
		// meanwhile still gets its answer below.
		errs = append(errs, edgeError(err))
		logf("taking over from the predecessor failed: %v", err)
	} else {
		logf("serving %s %v (%v socket)", sock.Network, sock.Addr, sock.Origin)
		if cfg.OnReady != nil {
			cfg.OnReady(sock)
		}
		select {
		case err := <-served:
			served <- err // read again below
			logf("shutting down: Serve returned: %v", err)
		case <-ctx.Done():
			logf("shutting down: %v", context.Cause(ctx))
		case <-successor:
			logf("shutting down: a successor took over the socket")
		}
	}

	timeout := cfg.ShutdownTimeout
	if timeout == 0 {
		timeout = DefaultShutdownTimeout
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	dl.Close()
	err := dl.WaitClaimed(stopCtx)
	if err == nil {
		err = srv.Shutdown(stopCtx)
	}
	if err != nil {
		if c, ok := srv.(io.Closer); ok {
			c.Close()
		}
		errs = append(errs, fmt.Errorf("handoff: graceful stop did not finish within Config.ShutdownTimeout (%v); connections still open were closed: %w", timeout, err))
	}
	// Serve returned when the listener stopped, or at the latest when
	// Shutdown did; look before waiting, as stopCtx may have ended.
	select {
	case err = <-served:
	default:
		select {
		case err = <-served:
		case <-stopCtx.Done():
			err = fmt.Errorf("handoff: Serve had not returned %v after the listener closed", timeout)
		}
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
