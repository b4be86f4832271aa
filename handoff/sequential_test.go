//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

// seqServer speaks a sequential protocol, as miekg/dns does over TCP: it
// reads one 8-byte request at a time, exactly (nothing read ahead), and
// answers it with its generation's byte and the request. Its Shutdown
// closes every connection at once, as miekg/dns's does in effect (a read
// deadline in the past): without Service.Sequential, a request on its way
// is lost.
type seqServer struct {
	gen   byte
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newSeqServer(gen byte) *seqServer {
	return &seqServer{gen: gen, conns: make(map[net.Conn]struct{})}
}

func (s *seqServer) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *seqServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	var req [8]byte
	for {
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		if _, err := c.Write(append([]byte{s.gen}, req[:]...)); err != nil {
			return
		}
	}
}

func (s *seqServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// seqClients keep one connection each and send requests back to back,
// reconnecting after a failure.
type seqClients struct {
	ok, failed, reconnects atomic.Int64
	// gens[i] is the set of generations that answered client i on one
	// connection, without a reconnect.
	mu   sync.Mutex
	gens []map[byte]bool
	stop chan struct{}
	wg   sync.WaitGroup
}

func startSeqClients(t *testing.T, addr string, n int) *seqClients {
	cl := &seqClients{stop: make(chan struct{}), gens: make([]map[byte]bool, n)}
	for i := range n {
		cl.gens[i] = make(map[byte]bool)
		cl.wg.Go(func() { cl.run(addr, i) })
	}
	t.Cleanup(cl.halt)
	return cl
}

func (cl *seqClients) halt() {
	select {
	case <-cl.stop:
	default:
		close(cl.stop)
	}
	cl.wg.Wait()
}

func (cl *seqClients) run(addr string, i int) {
	deadline := time.Now().Add(60 * time.Second) // bounded whatever happens
	var c net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	seen := make(map[byte]bool)
	for seq := uint64(0); time.Now().Before(deadline); seq++ {
		select {
		case <-cl.stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
				cl.failed.Add(1)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			seen = make(map[byte]bool)
		}
		var req [8]byte
		for b := range req {
			req[b] = byte(seq >> (8 * b))
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var resp [9]byte
		_, err := c.Write(req[:])
		if err == nil {
			_, err = io.ReadFull(c, resp[:])
		}
		if err != nil || [8]byte(resp[1:]) != req {
			cl.failed.Add(1)
			cl.reconnects.Add(1)
			c.Close()
			c = nil
			continue
		}
		cl.ok.Add(1)
		seen[resp[0]] = true
		if len(seen) > 1 {
			cl.mu.Lock()
			for g := range seen {
				cl.gens[i][g] = true
			}
			cl.mu.Unlock()
		}
	}
}

// mostGenerations is the most generations that answered one client on one
// connection.
func (cl *seqClients) mostGenerations() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	most := 0
	for _, g := range cl.gens {
		most = max(most, len(g))
	}
	return most
}

// rollSequential runs gens generations of a seqServer one after the other
// on one Path under load from clients kept-open connections, and returns
// the clients.
func rollSequential(t *testing.T, sequential bool, gens int) *seqClients {
	path := sockPath(t)
	var cl *seqClients
	var prev *runAllGeneration
	for gen := range gens {
		log := newLog(t, "gen"+string(rune('1'+gen)))
		svc := handoff.Service{Network: "tcp", Address: "127.0.0.1:0", Server: newSeqServer(byte(gen + 1)), Sequential: sequential}
		g := runAll(t, handoff.RunConfig{Config: handoff.Config{Path: path, Logger: log.logger()}, ShutdownTimeout: 5 * time.Second}, svc)
		addr := g.waitReady(t)
		if prev != nil {
			if err := prev.wait(t); err != nil {
				t.Fatalf("generation %d: RunAll returned %v after its successor took over", gen, err)
			}
		}
		if cl == nil {
			cl = startSeqClients(t, addr.String(), 8)
		}
		// Let requests flow before the next restart.
		for start := cl.ok.Load(); cl.ok.Load() < start+200; {
			time.Sleep(5 * time.Millisecond)
		}
		prev = g
	}
	cl.halt()
	return cl
}

// TestSequentialHandsOverIdleConnections: with Service.Sequential, each
// restart hands the kept-open connections to the successor when idle, so
// that the clients, which never stop sending, lose no request and never
// reconnect, and a connection is answered by several generations.
func TestSequentialHandsOverIdleConnections(t *testing.T) {
	before := handoff.ReadStats().Passed
	cl := rollSequential(t, true, 5)
	t.Logf("Sequential: %d requests answered, %d failed, %d reconnects; most generations on one connection: %d; connections handed over: %d",
		cl.ok.Load(), cl.failed.Load(), cl.reconnects.Load(), cl.mostGenerations(), handoff.ReadStats().Passed-before)
	if n := cl.failed.Load(); n != 0 {
		t.Errorf("%d requests failed across 4 restarts, want 0", n)
	}
	if n := cl.mostGenerations(); n < 2 {
		t.Errorf("no connection was answered by more than %d generation: none was handed over", n)
	}
	if handoff.ReadStats().Passed == before {
		t.Error("Stats.Passed did not grow")
	}
}

// TestSequentialControl: the same restarts without Service.Sequential,
// where the server's own Shutdown closes the connections, fail requests.
func TestSequentialControl(t *testing.T) {
	cl := rollSequential(t, false, 3)
	t.Logf("control: %d requests answered, %d failed, %d reconnects", cl.ok.Load(), cl.failed.Load(), cl.reconnects.Load())
	if cl.failed.Load() == 0 {
		t.Error("no request failed without Service.Sequential: the test does not show what Sequential saves")
	}
}

// TestSequentialLastStopClosesIdle: without a successor, the stop closes
// each kept-open connection once it is idle, and RunAll returns nil; a
// client that waits between requests sees an orderly EOF, not a reset.
func TestSequentialLastStopClosesIdle(t *testing.T) {
	log := newLog(t, "only")
	svc := handoff.Service{Network: "tcp", Address: "127.0.0.1:0", Server: newSeqServer(1), Sequential: true}
	g := runAll(t, handoff.RunConfig{Config: handoff.Config{Path: sockPath(t), Logger: log.logger()}, ShutdownTimeout: 5 * time.Second}, svc)
	addr := g.waitReady(t)
	c, err := net.DialTimeout("tcp", addr.String(), runWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(runWait))
	var resp [9]byte
	if _, err := c.Write(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, resp[:]); err != nil {
		t.Fatal(err)
	}
	g.stop()
	if err := g.wait(t); err != nil {
		t.Fatalf("RunAll: %v", err)
	}
	if n, err := c.Read(resp[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection after the last stop: read %d bytes, %v; want io.EOF", n, err)
	}
}

// runAllGeneration is one RunAll in a goroutine.
type runAllGeneration = generation

func runAll(t *testing.T, cfg handoff.RunConfig, services ...handoff.Service) *generation {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &generation{ready: make(chan net.Addr, len(services)), done: make(chan struct{}), stop: cancel}
	cfg.OnReady = func(a net.Addr) { g.ready <- a }
	go func() {
		defer close(g.done)
		g.err = handoff.RunAll(ctx, cfg, services...)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(runWait):
			t.Errorf("RunAll did not return %v after its context ended", runWait)
		}
	})
	return g
}
