// Package lameduck is the drain that package drain and the fasthttp
// integration share: a listener whose accept loop can be stopped and
// waited for and, for an HTTP server that reports the state of each
// connection, a lame-duck shutdown. The server stops accepting; each
// response from then on closes its connection (the adapter of each HTTP
// library says "Connection: close" its own way, asking [Server.Draining]);
// a connection that stays quiet for a grace period, with no bytes of a
// request waiting on it, is closed; and the drain waits until no
// connection is left that the library's own shutdown would drop.
//
// An adapter hands its library's connection state hook to [StateHook],
// serves through [Server.Listen], asks for "Connection: close" while
// [Server.Draining], and calls its library's own shutdown once
// [Server.Drain] returns; everything else lives here.
package lameduck

import (
	"context"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is what an HTTP server reports of a connection, in the terms that
// net/http and fasthttp share.
type State uint8

const (
	New      State = iota // accepted, its first request not read yet
	Active                // a request is being read or answered
	Idle                  // idle in keep-alive between requests
	Hijacked              // the handler has taken the connection over
	Closed                // the server has closed it
)

// MaxSniff is the most that [Config.Sniff] may ask for.
const MaxSniff = 16

// Config is what a [Server] needs to know of the HTTP library it drains.
type Config struct {
	// DefaultGrace is the grace Drain uses when it is given none.
	DefaultGrace time.Duration

	// Sniff is how many of the first bytes read on each connection it
	// keeps for Multiplexed and QuietNew, at most MaxSniff.
	Sniff int

	// Multiplexed, if not nil, is called once for each connection, when
	// it first goes Active or Idle, with the connection the server
	// reported (perhaps a *tls.Conn around the one accepted) and the
	// first bytes read from it, Sniff of them at most, zeros after. It
	// reports whether the connection speaks a protocol that the
	// library's own shutdown ends without loss (HTTP/2, with GOAWAY):
	// the drain then neither waits for nor closes it once it has left
	// New.
	Multiplexed func(nc net.Conn, head [MaxSniff]byte) bool

	// QuietNew makes a connection that has read nothing since it was
	// accepted quiet, like one idle in keep-alive: clients keep
	// connections they dialed and did not need in their pools. It needs
	// Sniff > 0.
	QuietNew bool

	// ByAddr, if not nil, is called for each connection accepted. If it
	// returns true, SetState finds the connection by its remote address
	// when the library reports it inside a wrapper of its own that has no
	// NetConn method (fasthttp's, with MaxConnsPerIP).
	ByAddr func() bool
}

// Server tracks the connections accepted through its listeners and drains
// them. Its zero value is not usable; call [NewServer].
type Server struct {
	cfg Config

	drainOnce sync.Once
	draining  atomic.Bool   // Drain has begun: responses close their connections
	grace     time.Duration // set before draining is

	mu        sync.Mutex
	stopping  bool // Stop began: Listen refuses listeners
	closing   bool // Stop(true) began: a connection accepted from now on is closed at once
	listeners map[*Listener]struct{}
	conns     map[*conn]struct{} // open and not hijacked
	// byAddr finds a connection by its remote address, which is the same
	// *net.TCPAddr for the life of a connection; see Config.ByAddr.
	byAddr map[net.Addr]*conn

	// busy is what Drain waits for: 1 until the drain has begun, plus the
	// Accept calls in progress, plus the connections conn.busyLocked
	// holds busy.
	busy gauge
}

// NewServer returns a Server for a library described by cfg.
func NewServer(cfg Config) *Server {
	if cfg.Sniff < 0 || cfg.Sniff > MaxSniff || cfg.QuietNew && cfg.Sniff == 0 {
		panic("lameduck: Config.Sniff out of range")
	}
	s := &Server{
		cfg:       cfg,
		listeners: make(map[*Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		byAddr:    make(map[net.Addr]*conn),
	}
	s.busy.Add(1)
	return s
}

// Listen returns a Listener around ln that tells s of every connection it
// accepts. Once Stop has been called it closes ln and returns nil instead.
// Call Unlisten when serving from the Listener has ended.
func (s *Server) Listen(ln net.Listener) *Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		ln.Close()
		return nil
	}
	l := NewListener(ln)
	l.srv = s
	s.listeners[l] = struct{}{}
	return l
}

// Unlisten forgets a Listener that Listen returned.
func (s *Server) Unlisten(l *Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

// Stopping reports whether Stop has been called, by Drain or directly.
func (s *Server) Stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// Draining reports whether Drain has begun: every response written from
// now on should close its connection.
func (s *Server) Draining() bool { return s.draining.Load() }

// Stop makes Listen refuse listeners and closes the current ones; with
// closing, a connection accepted from now on is closed at once. It returns
// the first error that closing a listener returned.
func (s *Server) Stop(closing bool) error {
	s.mu.Lock()
	s.stopping = true
	s.closing = s.closing || closing
	ls := slices.Collect(maps.Keys(s.listeners))
	s.mu.Unlock()
	var err error
	for _, l := range ls {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// CloseConns closes every connection that is open and not hijacked,
// including those the library no longer knows of.
func (s *Server) CloseConns() {
	for _, c := range s.openConns() {
		c.close()
	}
}

// Drain stops accepting, closes each connection that stays quiet for grace
// (Config.DefaultGrace if grace <= 0), counted from when it went quiet (at
// once if it has been for that long), unless
// bytes of a request are waiting on it, and waits until no connection is
// busy: none is New, and none speaks a protocol that is not multiplexed and
// has not closed. The first call starts the drain, with its grace; every
// call waits, until ctx ends, when it returns ctx.Err().
func (s *Server) Drain(ctx context.Context, grace time.Duration) error {
	s.drainOnce.Do(func() {
		s.Stop(false)
		s.grace = grace
		if grace <= 0 {
			s.grace = s.cfg.DefaultGrace
		}
		s.mu.Lock()
		s.draining.Store(true)
		open := slices.Collect(maps.Keys(s.conns))
		s.mu.Unlock()
		// From here on SetState schedules the connections that go quiet;
		// these are the ones quiet already.
		for _, c := range open {
			c.scheduleReap()
		}
		s.busy.Add(-1)
	})
	return s.busy.Wait(ctx)
}

// SetState records a state the library reported for nc, which is a
// connection of s or a wrapper around one; others are left alone.
func (s *Server) SetState(nc net.Conn, state State) {
	if c := s.own(nc); c != nil {
		c.setState(nc, state)
	}
}

// StateHook returns a connection state hook for a library whose states are
// of type S: it calls s.SetState with states[state], for the states the
// table has, then next if it is not nil.
func StateHook[S ~int](s *Server, states []State, next func(net.Conn, S)) func(net.Conn, S) {
	return func(nc net.Conn, state S) {
		if state >= 0 && int(state) < len(states) {
			s.SetState(nc, states[state])
		}
		if next != nil {
			next(nc, state)
		}
	}
}

func (s *Server) openConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.conns))
}

// quietState reports whether a connection in state may be quiet: no
// request in progress, and none on its way that the server has seen.
func (s *Server) quietState(state State) bool {
	return state == Idle || state == New && s.cfg.QuietNew
}

// track registers a connection Accept returned; its busy count comes from
// the Accept call. After Stop(true) it closes the connection instead.
func (s *Server) track(c *conn) {
	var key net.Addr
	if s.cfg.ByAddr != nil && s.cfg.ByAddr() {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			key = a
		}
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.conns[c] = struct{}{}
		if key != nil {
			c.key = key
			s.byAddr[key] = c
		}
	}
	s.mu.Unlock()
	if closing {
		c.close()
	}
}

// forget stops tracking a connection that has closed or been hijacked.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.key != nil && s.byAddr[c.key] == c {
		delete(s.byAddr, c.key)
	}
	s.mu.Unlock()
}

// own finds the conn of s under nc: the conn itself, a *tls.Conn or other
// wrapper with a NetConn method around it, or, with Config.ByAddr, a
// wrapper that hides it.
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
			if s.cfg.ByAddr == nil {
				return nil
			}
			a, ok := nc.RemoteAddr().(*net.TCPAddr)
			if !ok {
				return nil
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.byAddr[a]
		}
	}
	return nil
}
