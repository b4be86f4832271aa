package drain

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/b93f8b21/reuseport/internal/gauge"
)

// DefaultIdleGrace is how long [Server.Shutdown] keeps open a connection
// with no request in progress, when [Server.IdleGrace] is zero.
const DefaultIdleGrace = 2 * time.Second

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
	// time gets its answer, with "Connection: close". Zero means
	// DefaultIdleGrace. Set it before calling Shutdown.
	IdleGrace time.Duration

	srv  *http.Server
	next func(net.Conn, http.ConnState) // the hook srv had before NewServer

	drainOnce sync.Once
	draining  atomic.Bool // Shutdown has begun: responses say "Connection: close"
	grace     time.Duration

	mu        sync.Mutex
	stopping  bool                   // Shutdown or Close began: Serve refuses listeners
	listeners map[*Listener]struct{} // those Serve is accepting from
	conns     map[*conn]struct{}     // open and not hijacked

	// busy is what Shutdown waits for: 1 until the drain has begun, plus the
	// Accept calls in progress, plus the connections conn.busyLocked holds
	// busy: every HTTP/1 connection until it closes, and every connection
	// whose protocol is not known yet.
	busy gauge.Gauge
}

// NewServer prepares srv to drain. Call it before serving, once srv's
// Handler and ConnState are set: it wraps srv.Handler (nil meaning
// [http.DefaultServeMux]) with one that adds "Connection: close" to HTTP/1
// responses once Shutdown has begun, and installs a ConnState hook that
// calls the one srv had, if any. Do not replace either afterwards.
func NewServer(srv *http.Server) *Server {
	s := &Server{
		srv:       srv,
		next:      srv.ConnState,
		listeners: make(map[*Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	s.busy.Add(1)
	srv.ConnState = s.connState
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && s.draining.Load() {
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
func (s *Server) Serve(ln net.Listener) error {
	l, err := s.listen(ln)
	if err != nil {
		return err
	}
	defer s.unlisten(l)
	return s.served(s.srv.Serve(l))
}

// ServeTLS is [http.Server.ServeTLS] through a [Listener] wrapped around ln,
// with the return values of [Server.Serve].
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	l, err := s.listen(ln)
	if err != nil {
		return err
	}
	defer s.unlisten(l)
	return s.served(s.srv.ServeTLS(l, certFile, keyFile))
}

// Shutdown drains the server without dropping a request, then calls
// [http.Server.Shutdown]:
//
//  1. It stops accepting on every listener Serve uses. Connections still
//     queued on a listening socket stay there for another holder of that
//     socket; see [Listener.Stop].
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
	s.drainOnce.Do(s.drain)
	if err := s.busy.Wait(ctx); err != nil {
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
	s.stop()
	err := s.srv.Close()
	s.mu.Lock()
	open := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.close()
	}
	return err
}

func (s *Server) drain() {
	s.stop()
	s.grace = s.IdleGrace
	if s.grace <= 0 {
		s.grace = DefaultIdleGrace
	}
	s.mu.Lock()
	s.draining.Store(true)
	idle := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		idle = append(idle, c)
	}
	s.mu.Unlock()
	// From here on setState schedules the connections that go idle; these
	// are the ones idle already.
	for _, c := range idle {
		c.scheduleReap()
	}
	s.busy.Add(-1)
}

// stop makes Serve refuse new listeners and stops the current ones.
func (s *Server) stop() {
	s.mu.Lock()
	s.stopping = true
	ls := make([]*Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Stop()
	}
}

func (s *Server) listen(ln net.Listener) (*Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		ln.Close()
		return nil, http.ErrServerClosed
	}
	l := NewListener(ln)
	l.srv = s
	s.listeners[l] = struct{}{}
	return l, nil
}

func (s *Server) unlisten(l *Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

// served turns the error of the Accept that Stop interrupted into the
// error http.Server.Serve returns after its own Shutdown.
func (s *Server) served(err error) error {
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if stopping && errors.Is(err, net.ErrClosed) {
		return http.ErrServerClosed
	}
	return err
}

// track counts a new connection; its busy count comes from the Accept
// call that returned it.
func (s *Server) track(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(c *conn, wasBusy bool) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if wasBusy {
		s.busy.Add(-1)
	}
}

func (s *Server) connState(nc net.Conn, state http.ConnState) {
	if c := s.own(nc); c != nil {
		c.setState(nc, state)
	}
	if s.next != nil {
		s.next(nc, state)
	}
}

// own finds the conn of this server under nc, which is the conn itself or,
// for TLS, a *tls.Conn around it.
func (s *Server) own(nc net.Conn) *conn {
	for range 4 {
		switch c := nc.(type) {
		case *conn:
			if c.l.srv == s {
				return c
			}
			return nil
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
}
