package fasthttpdrain

import (
	"context"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/integrations/internal/lameduck"
)

// Server makes a [fasthttp.Server] shut down without dropping requests; see
// the package documentation. It satisfies handoff.Server, and has the Close
// method handoff.Run calls when the graceful stop times out.
//
// Serve connections through [Server.Serve] or [Server.ServeTLS], never the
// fasthttp.Server's own methods, and stop through [Server.Shutdown] and
// [Server.Close]. The fasthttp.Server's ConnState hook sees the connections
// of the listener that Serve wraps around the one it is given; their
// NetConn method returns the connection accepted from that one.
type Server struct {
	// IdleGrace is how long Shutdown keeps open a connection that is idle
	// in keep-alive, counted from its last response, so that a client
	// that reuses it in that time gets its answer (with
	// "Connection: close"). Zero means 2 seconds. Set it before calling
	// Shutdown.
	IdleGrace time.Duration

	srv  *fasthttp.Server
	core *lameduck.Server
}

// defaultIdleGrace is what a zero Server.IdleGrace means.
const defaultIdleGrace = 2 * time.Second

// NewServer prepares srv to drain, and CHANGES srv: it replaces
// srv.Handler and srv.ConnState, for good. The new Handler calls the old
// one and asks fasthttp to close the connection after its response once
// Shutdown has begun; the new ConnState hook calls the one srv had, if
// any. Call it before serving, once srv's Handler and ConnState are set,
// do not replace either afterwards, and call it once per srv: srv belongs
// to the returned Server.
func NewServer(srv *fasthttp.Server) *Server {
	s := &Server{
		srv: srv,
		// fasthttp hides a connection in a wrapper of its own, without a
		// NetConn method, to count connections per IP address.
		core: lameduck.NewServer(lameduck.Config{
			DefaultGrace: defaultIdleGrace,
			ByAddr:       func() bool { return srv.MaxConnsPerIP > 0 },
		}),
	}
	srv.ConnState = lameduck.StateHook(s.core, states, srv.ConnState)
	h := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		h(ctx)
		// Looked at once the handler has returned, since fasthttp writes
		// the response only then: a request whose handler began before
		// the drain is answered with "Connection: close" too. A hijacked
		// connection is the handler's; fasthttp would close it instead
		// of handing it over.
		if s.core.Draining() && !ctx.Hijacked() {
			ctx.SetConnectionClose()
		}
	}
	return s
}

// Shutdown drains the server without dropping a request, then calls
// [fasthttp.Server.ShutdownWithContext]:
//
//  1. It stops accepting on every listener Serve uses, by closing it.
//     Under handoff.Run that is only this process's descriptor: the
//     connections queued on the socket go to the successor.
//  2. Every request whose handler returns from now on is answered with
//     "Connection: close", after which fasthttp closes its connection.
//     Connections idle in keep-alive stay open: a request a client sends
//     on one is answered the same way.
//  3. It closes each connection that stays idle in keep-alive for
//     [Server.IdleGrace] after its last response (at once if it already
//     has), unless bytes of a request are waiting on it.
//  4. It waits until every connection has closed, those whose first
//     request has not arrived yet included. Hijacked connections are not
//     waited for.
//  5. It calls fasthttp.Server.ShutdownWithContext(ctx), which closes
//     [fasthttp.RequestCtx.Done] and returns once Serve has.
//
// If ctx ends first, Shutdown closes every connection still open, as
// [Server.Close] does, lets fasthttp.Server.ShutdownWithContext see the
// ended ctx, and returns ctx.Err().
//
// Shutdown may be called more than once and concurrently; each call waits.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.core.Drain(ctx, s.IdleGrace); err != nil {
		s.Close()
		_ = s.srv.ShutdownWithContext(ctx) // returns at once: ctx has ended
		return err
	}
	return s.srv.ShutdownWithContext(ctx)
}

// Close stops accepting, then closes every connection except hijacked
// ones, without waiting for the requests in progress on them. It returns
// the first error closing a listener returned.
func (s *Server) Close() error {
	err := s.core.Stop(true)
	s.core.CloseConns()
	return err
}

// Serve is [fasthttp.Server.Serve] through a listener wrapped around ln,
// which tells s of every connection it accepts. Like fasthttp.Server.Serve,
// it returns nil once ln is closed, by Shutdown, Close or the caller (as
// handoff.Run stops the listener it passes). Called after Shutdown or Close,
// it closes ln and returns nil at once. Serve may run on several listeners
// at once.
//
// Pass ln itself, not a [crypto/tls] listener made from it, which would
// hide the TLS connection from fasthttp: use ServeTLS for TLS.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, s.srv.Serve) }

// ServeTLS is [fasthttp.Server.ServeTLS] through a listener wrapped around
// ln, with the return values of [Server.Serve].
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.serve(ln, func(l net.Listener) error { return s.srv.ServeTLS(l, certFile, keyFile) })
}

// serve runs serve, fasthttp.Server.Serve or ServeTLS, on a listener
// around ln that tells s.core of every connection accepted.
func (s *Server) serve(ln net.Listener, serve func(net.Listener) error) error {
	l := s.core.Listen(ln)
	if l == nil {
		return nil
	}
	defer s.core.Unlisten(l)
	return serve(l)
}

// states translates fasthttp's connection states.
var states = []lameduck.State{
	fasthttp.StateNew:      lameduck.New,
	fasthttp.StateActive:   lameduck.Active,
	fasthttp.StateIdle:     lameduck.Idle,
	fasthttp.StateHijacked: lameduck.Hijacked,
	fasthttp.StateClosed:   lameduck.Closed,
}
