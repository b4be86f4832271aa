package drain

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/b93f8b21/reuseport/internal/lameduck"
)

// defaultIdleGrace is what a zero Server.IdleGrace means.
const defaultIdleGrace = 2 * time.Second

// Server makes an [http.Server] shut down without dropping requests.
//
// [http.Server.Shutdown] closes a connection whose request it reads after
// the shutdown began without answering it, and closes connections idle in
// keep-alive at once, losing a request a client sends on one at that
// moment. [Server.Shutdown] instead stops accepting, answers every request
// that arrives on a connection it accepted with "Connection: close", closes
// an idle keep-alive connection only once it has been idle for IdleGrace,
// and only then calls [http.Server.Shutdown].
//
// Serve connections through [Server.Serve] or [Server.ServeTLS], never the
// http.Server's own methods, and stop through [Server.Shutdown] and
// [Server.Close]. The http.Server's hooks (ConnState, ConnContext,
// BaseContext) see the [Listener] and its connections, whose NetConn method
// returns the connection accepted from ln.
type Server struct {
	// IdleGrace is how long Shutdown keeps open a connection with no
	// request in progress (an HTTP/1 connection idle in keep-alive,
	// counted from its last response, or one that has sent nothing since
	// it was accepted), so that a client or proxy that uses it in that
	// time gets its answer, with "Connection: close". Zero means 2
	// seconds. Set it before calling Shutdown.
	IdleGrace time.Duration

	srv  *http.Server
	core *lameduck.Server
}

// NewServer prepares srv to drain, and CHANGES srv: it replaces
// srv.Handler and srv.ConnState, for good. The new Handler calls the old
// one (nil meaning [http.DefaultServeMux]) and adds "Connection: close" to
// HTTP/1 responses once Shutdown has begun; the new ConnState hook calls
// the one srv had, if any. The drain needs both to see every request and
// connection, and net/http offers no other way in. So:
//
//   - call NewServer before serving, once srv's Handler and ConnState are
//     set, and do not replace either afterwards;
//   - srv belongs to the returned Server: serving srv.Handler through
//     another http.Server after this Server's Shutdown answers every
//     HTTP/1 request with "Connection: close";
//   - call NewServer once per srv; pass a new http.Server (or a copy of
//     its exported fields, as handoff.Run does) to drain again, since
//     net/http serves an http.Server no more once it was shut down.
func NewServer(srv *http.Server) *Server {
	s := &Server{
		srv: srv,
		core: lameduck.NewServer(lameduck.Config{
			DefaultGrace: defaultIdleGrace,
			Sniff:        len(h2Preface),
			Multiplexed:  isHTTP2,
			QuietNew:     true,
		}),
	}
	srv.ConnState = lameduck.StateHook(s.core, states, srv.ConnState)
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && s.core.Draining() {
			// net/http closes the connection once this response is written.
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
	return s
}

// Serve is [http.Server.Serve] through a [Listener] wrapped around ln. Like
// it, Serve closes ln when it returns, and returns [http.ErrServerClosed]
// once Shutdown or Close has been called, including when that was before
// Serve. Serve may run on several listeners at once.
//
// Pass ln itself, not a [crypto/tls] listener made from it: http.Server
// speaks HTTP/2 and fills Request.TLS only when it sees the *tls.Conn, so
// use ServeTLS for TLS.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, s.srv.Serve) }

// ServeTLS is [http.Server.ServeTLS] through a [Listener] wrapped around ln,
// with the return values of [Server.Serve].
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.serve(ln, func(l net.Listener) error { return s.srv.ServeTLS(l, certFile, keyFile) })
}

// Shutdown drains the server without dropping a request, then calls
// [http.Server.Shutdown]:
//
//  1. It stops accepting on every listener Serve uses. Connections still
//     queued on a listening socket stay there for another holder of that
//     socket; see [Listener.Close].
//  2. Every HTTP/1 request whose handler starts from now on is answered
//     with "Connection: close", after which net/http closes its
//     connection. Connections idle in keep-alive stay open: a request a
//     client sends on one is answered the same way.
//  3. It closes each connection that stays quiet for [Server.IdleGrace]
//     (at once if it already has), unless bytes of a request are already
//     waiting on it. Quiet is an HTTP/1 connection idle in keep-alive,
//     counted from its last response, or one that has not sent a byte
//     since it was accepted: clients keep both kinds in their pools.
//  4. It waits until every HTTP/1 connection has closed and no connection
//     is in [http.StateNew] (accepted, its request not yet read; for TLS,
//     perhaps the handshake not yet done). HTTP/2 connections and hijacked
//     ones are not waited for beyond StateNew; see the package
//     documentation.
//  5. It calls http.Server.Shutdown(ctx), which sends GOAWAY on HTTP/2
//     connections, runs the functions given to
//     [http.Server.RegisterOnShutdown] and waits for those connections.
//
// If ctx ends during step 4, Shutdown calls http.Server.Shutdown with the
// ended ctx, which closes the connections idle at that moment and returns
// at once, and returns ctx.Err(). Connections still busy are then left
// open in net/http's own shutdown mode: a handler still running may finish
// and respond, but a request read from now on is dropped unanswered. Call
// [Server.Close] to close them.
//
// Shutdown may be called more than once and concurrently; each call waits.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.core.Drain(ctx, s.IdleGrace); err != nil {
		_ = s.srv.Shutdown(ctx) // returns at once: ctx has ended
		return err
	}
	return s.srv.Shutdown(ctx)
}

// Close stops accepting, then closes every connection except hijacked ones
// (see [http.Server.Close]), including those that net/http no longer knows
// about because Shutdown kept them open. It returns the error of
// http.Server.Close.
func (s *Server) Close() error {
	s.core.Stop(true)
	err := s.srv.Close()
	s.core.CloseConns()
	return err
}

// serve runs serve, http.Server.Serve or ServeTLS, on a Listener around ln.
func (s *Server) serve(ln net.Listener, serve func(net.Listener) error) error {
	l := s.core.Listen(ln)
	if l == nil {
		return http.ErrServerClosed
	}
	defer s.core.Unlisten(l)
	err := serve(&Listener{l})
	// The error of the Accept that the drain interrupted is the one
	// http.Server.Serve returns after its own Shutdown.
	if s.core.Stopping() && errors.Is(err, net.ErrClosed) {
		return http.ErrServerClosed
	}
	return err
}

// states translates net/http's connection states.
var states = []lameduck.State{
	http.StateNew:      lameduck.New,
	http.StateActive:   lameduck.Active,
	http.StateIdle:     lameduck.Idle,
	http.StateHijacked: lameduck.Hijacked,
	http.StateClosed:   lameduck.Closed,
}

// h2Preface starts every cleartext HTTP/2 connection (RFC 9113 §3.4);
// net/http reads this much of it before it looks at the rest.
const h2Preface = "PRI * HTTP/2.0"

// isHTTP2 tells an HTTP/2 connection from an HTTP/1 one once net/http has
// read from it. For TLS the handshake has settled it; in cleartext only
// HTTP/2 starts with its preface. HTTP/2 needs no wait once its preface is
// read: http.Server.Shutdown ends it with GOAWAY, which answers every
// stream the server has seen and tells the client to retry the others
// elsewhere.
func isHTTP2(nc net.Conn, head [lameduck.MaxSniff]byte) bool {
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	return bytes.Equal(head[:len(h2Preface)], []byte(h2Preface))
}
