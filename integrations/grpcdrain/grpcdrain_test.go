package grpcdrain_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/b93f8b21/reuseport/drain"
	"github.com/b93f8b21/reuseport/integrations/grpcdrain"
)

// slowHealth answers Check with SERVING, but only once release is closed
// or the RPC's context ends; started receives one value per Check begun.
type slowHealth struct {
	healthpb.UnimplementedHealthServer
	started chan struct{}
	release chan struct{}
}

func newSlowHealth() *slowHealth {
	return &slowHealth{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (h *slowHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.started <- struct{}{}
	select {
	case <-h.release:
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// fastHealth answers at once and names the server in the "server" header.
type fastHealth struct {
	healthpb.UnimplementedHealthServer
	name string
}

func (h fastHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	grpc.SetHeader(ctx, metadata.Pairs("server", h.name))
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serve runs s on ln until the test ends and returns what Serve returns.
func serve(t *testing.T, s *grpc.Server, ln net.Listener) <-chan error {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return served
}

// result is one RPC's outcome.
type result struct {
	server string // the "server" header, if any
	err    error
}

// check sends one health check to addr on a ClientConn of its own, fails
// fast (no waiting for a connection that failed) and delivers the outcome.
func check(t *testing.T, addr string) <-chan result {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var md metadata.MD
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false), grpc.Header(&md))
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = errors.New("status " + resp.GetStatus().String())
		}
		r := result{err: err}
		if v := md.Get("server"); len(v) > 0 {
			r.server = v[0]
		}
		done <- r
	}()
	return done
}

func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// TestShutdownWaitsForRPC: an RPC in progress when Shutdown begins is
// answered, and Shutdown returns only after it, with nil.
func TestShutdownWaitsForRPC(t *testing.T) {
	ln := listen(t)
	h := newSlowHealth()
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, h)
	served := serve(t, s, ln)

	rpc := check(t, ln.Addr().String())
	wait(t, h.started, "the RPC to reach the server")

	stopped := make(chan error, 1)
	go func() { stopped <- grpcdrain.NewServer(s).Shutdown(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned %v while an RPC was in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The server no longer accepts: a new connection is refused.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("a new connection was accepted during Shutdown")
	}

	close(h.release)
	if r := wait(t, rpc, "the RPC"); r.err != nil {
		t.Errorf("the RPC in progress failed: %v", r.err)
	}
	if err := wait(t, stopped, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := wait(t, served, "Serve"); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestShutdownTimeoutStops: when ctx ends before the RPCs do, Shutdown
// stops the server hard, the RPC fails, and Shutdown returns ctx.Err().
func TestShutdownTimeoutStops(t *testing.T) {
	ln := listen(t)
	h := newSlowHealth() // never released
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, h)
	served := serve(t, s, ln)

	rpc := check(t, ln.Addr().String())
	wait(t, h.started, "the RPC to reach the server")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := grpcdrain.NewServer(s).Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v after its context ended at 100ms", d)
	}
	r := wait(t, rpc, "the RPC")
	if status.Code(r.err) != codes.Unavailable {
		t.Errorf("the RPC cut off by Stop returned %v, want code Unavailable", r.err)
	}
	if err := wait(t, served, "Serve"); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestClose stops the server at once, whatever RPCs are in progress.
func TestClose(t *testing.T) {
	ln := listen(t)
	h := newSlowHealth()
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, h)
	served := serve(t, s, ln)
	rpc := check(t, ln.Addr().String())
	wait(t, h.started, "the RPC to reach the server")

	if err := grpcdrain.NewServer(s).Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if r := wait(t, rpc, "the RPC"); status.Code(r.err) != codes.Unavailable {
		t.Errorf("the RPC cut off by Close returned %v, want code Unavailable", r.err)
	}
	if err := wait(t, served, "Serve"); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// heldListener holds the goroutine grpc-go starts for an accepted
// connection before that goroutine looks at whether the server has been
// stopped: grpc.Server.Serve asks the listener for its address in that
// goroutine, before anything else, and heldListener's Addr blocks there
// until release is closed. It is how the tests below put a connection,
// every time, where a restart under load puts one now and then.
type heldListener struct {
	net.Listener
	armed   atomic.Bool
	held    chan struct{} // closed once the connection's goroutine is held
	release chan struct{}
	closed  chan struct{} // closed by Close
	once    sync.Once
}

func hold(ln net.Listener) *heldListener {
	return &heldListener{Listener: ln, held: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
}

func (l *heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.armed.Store(true)
	}
	return c, err
}

func (l *heldListener) Addr() net.Addr {
	if l.armed.CompareAndSwap(true, false) {
		close(l.held)
		<-l.release
	}
	return l.Listener.Addr()
}

func (l *heldListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// handoffPair sets up a restart in one process: the predecessor's
// grpc.Server and a successor that serves a duplicate of the same
// listening socket, which the client's next connection then reaches.
// It returns the predecessor's held listener, the successor's start
// function and the address.
func handoffPair(t *testing.T) (*heldListener, func(), string) {
	t.Helper()
	ln := listen(t)
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	dup, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dup.Close() })
	successor := grpc.NewServer()
	healthpb.RegisterHealthServer(successor, fastHealth{name: "successor"})
	start := func() { serve(t, successor, dup) }
	return hold(ln), start, ln.Addr().String()
}

// TestBarrierKeepsHeldConnection is what handoff.Run does at a restart,
// with a connection accepted just before the stop: stop accepting, wait
// until the server has taken up every accepted connection
// (drain.Listener.WaitClaimed), then Shutdown. The connection is served
// (with its RPC, or with GOAWAY that sends the RPC to the successor).
func TestBarrierKeepsHeldConnection(t *testing.T) {
	held, startSuccessor, addr := handoffPair(t)
	dl := drain.NewListener(held)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, fastHealth{name: "predecessor"})
	served := serve(t, s, dl)

	rpc := check(t, addr)
	select {
	case <-held.held:
	case <-time.After(10 * time.Second):
		t.Fatal("grpc.Server.Serve no longer asks the listener for its address in the connection's goroutine; this test cannot hold the connection there")
	}
	startSuccessor()

	dl.Close()
	claimed := make(chan error, 1)
	go func() { claimed <- dl.WaitClaimed(context.Background()) }()
	select {
	case err := <-claimed:
		t.Fatalf("WaitClaimed returned %v while grpc-go had not taken up the connection", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(held.release)
	if err := wait(t, claimed, "WaitClaimed"); err != nil {
		t.Fatal(err)
	}
	if err := grpcdrain.NewServer(s).Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	r := wait(t, rpc, "the RPC")
	if r.err != nil {
		t.Errorf("the RPC on the connection accepted before the stop failed: %v", r.err)
	} else {
		t.Logf("answered by the %s", r.server)
	}
	// The listener stopped before the server did, as in handoff.Run,
	// which takes this error for a clean end.
	if err := wait(t, served, "Serve"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve = %v, want an error that wraps net.ErrClosed", err)
	}
}

// TestGracefulStopDropsHeldConnection is the control for the test above:
// GracefulStop called directly, with no barrier, closes the same
// connection without a word, and its RPC fails although a successor
// serves the port. If it did not, the test above would prove nothing.
func TestGracefulStopDropsHeldConnection(t *testing.T) {
	held, startSuccessor, addr := handoffPair(t)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, fastHealth{name: "predecessor"})
	served := serve(t, s, held)

	rpc := check(t, addr)
	select {
	case <-held.held:
	case <-time.After(10 * time.Second):
		t.Fatal("grpc.Server.Serve no longer asks the listener for its address in the connection's goroutine; this test cannot hold the connection there")
	}
	startSuccessor()

	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	// GracefulStop marks the server stopped, then closes its listeners.
	wait(t, held.closed, "GracefulStop to close the listener")
	close(held.release)
	wait(t, stopped, "GracefulStop")
	r := wait(t, rpc, "the RPC")
	if r.err == nil {
		t.Fatalf("the RPC was answered by the %s; GracefulStop without the barrier no longer drops the connection", r.server)
	}
	t.Logf("the RPC failed as expected: %v", r.err)
	if err := wait(t, served, "Serve"); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// failingCloseListener is a listener whose Close fails; accepting is
// closed once Serve has called Accept.
type failingCloseListener struct {
	net.Listener
	err       error
	once      sync.Once
	accepting chan struct{}
}

func (l *failingCloseListener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.accepting) })
	return l.Listener.Accept()
}

func (l *failingCloseListener) Close() error {
	l.Listener.Close()
	return l.err
}

// TestCloseReportsErrors: Close reports a listener that failed to close,
// which grpc.Server.Stop itself ignores.
func TestCloseReportsErrors(t *testing.T) {
	broken := errors.New("close is broken")
	srv := grpcdrain.NewServer(grpc.NewServer())
	ln := &failingCloseListener{Listener: listen(t), err: broken, accepting: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	<-ln.accepting
	if err := srv.Close(); !errors.Is(err, broken) {
		t.Errorf("Close returned %v, want an error wrapping %v", err, broken)
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}
