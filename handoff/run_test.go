//go:build darwin || freebsd || linux

package handoff_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

const runWait = 10 * time.Second

// generation is one Run of a server in a goroutine.
type generation struct {
	ready chan net.Addr
	done  chan struct{} // closed when Run has returned err
	err   error
	stop  context.CancelFunc
}

func runGeneration(t *testing.T, cfg handoff.RunConfig, srv handoff.Server) *generation {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &generation{ready: make(chan net.Addr, 1), done: make(chan struct{}), stop: cancel}
	cfg.OnReady = func(a net.Addr) { g.ready <- a }
	go func() {
		defer close(g.done)
		g.err = handoff.Run(ctx, cfg, "tcp", "127.0.0.1:0", srv)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(runWait):
			t.Errorf("Run did not return %v after its context ended", runWait)
		}
	})
	return g
}

func (g *generation) waitReady(t *testing.T) net.Addr {
	t.Helper()
	select {
	case s := <-g.ready:
		return s
	case <-g.done:
		t.Fatalf("Run returned before it served: %v", g.err)
	case <-time.After(runWait):
		t.Fatalf("Run not serving after %v", runWait)
	}
	panic("unreachable")
}

func (g *generation) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-g.done:
		return g.err
	case <-time.After(runWait):
		t.Fatalf("Run did not return within %v", runWait)
	}
	panic("unreachable")
}

func helloServer(body string) *http.Server {
	return &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, body)
	})}
}

// keepAlive is one client connection that sends requests one at a time.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr net.Addr) *keepAlive {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), runWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(runWait))
	return &keepAlive{c, bufio.NewReader(c)}
}

func (k *keepAlive) post() (body string, closing bool, err error) {
	if _, err := io.WriteString(k.c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata"); err != nil {
		return "", false, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", false, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b), resp.Close, err
}

// TestRunHandsOver: the second generation takes the socket, the first
// returns nil by itself, and a keep-alive connection to the first, idle
// when the successor took over, still has its next request answered.
func TestRunHandsOver(t *testing.T) {
	path := sockPath(t)
	log1, log2 := newLog(t, "first"), newLog(t, "second")
	first := runGeneration(t, handoff.RunConfig{Config: handoff.Config{Path: path, Logger: log1.logger()}}, helloServer("first"))
	a1 := first.waitReady(t)
	if !log1.contains(`msg="handoff: serving"`, "addr="+a1.String(), "origin=fresh") {
		t.Errorf("first generation logged no fresh socket serving on %v", a1)
	}
	ka := dialKeepAlive(t, a1)
	if body, closing, err := ka.post(); err != nil || body != "first" || closing {
		t.Fatalf("request before the handoff: %q closing=%v %v", body, closing, err)
	}

	second := runGeneration(t, handoff.RunConfig{Config: handoff.Config{Path: path, Logger: log2.logger()}}, helloServer("second"))
	a2 := second.waitReady(t)
	if a2.String() != a1.String() || !log2.contains(`msg="handoff: serving"`, "addr="+a1.String(), "origin=inherited") {
		t.Errorf("second generation serves %v, want %v, inherited (see its log)", a2, a1)
	}
	// The first drains: its idle connection is kept for the grace, and its
	// next request answered with Connection: close. The successor is ready
	// a moment before the first calls Shutdown (on a slow or emulated CPU,
	// long enough for a request), and a request in between is answered
	// as usual; so ask again, boundedly, until the drain answers.
	deadline := time.Now().Add(runWait / 2)
	for tries := 1; ; tries++ {
		body, closing, err := ka.post()
		if err != nil || body != "first" {
			t.Fatalf("request %d on a keep-alive connection to the draining generation: %q %v; want \"first\"", tries, body, err)
		}
		if closing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests on a keep-alive connection to the draining generation, for %v, answered without Connection: close", tries, runWait/2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.wait(t); err != nil {
		t.Fatalf("first generation: Run returned %v, want nil after a successor took over", err)
	}
	if body, _, err := dialKeepAlive(t, a1).post(); err != nil || body != "second" {
		t.Fatalf("request after the handoff: %q %v", body, err)
	}
	second.stop()
	if err := second.wait(t); err != nil {
		t.Fatalf("second generation: Run returned %v after its context ended, want nil", err)
	}
}

// lateServer stands for a server, such as grpc-go's, whose accept loop
// hands each connection to a goroutine that registers it a while later,
// and whose graceful stop drops a connection not registered yet. It
// answers each connection with "ok".
type lateServer struct {
	delay time.Duration

	mu       sync.Mutex
	quit     bool
	lns      []net.Listener
	accepted chan struct{}
	conns    sync.WaitGroup
}

func newLateServer(delay time.Duration) *lateServer {
	return &lateServer{delay: delay, accepted: make(chan struct{}, 16)}
}

func (s *lateServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		s.accepted <- struct{}{}
		go func() {
			time.Sleep(s.delay) // the goroutine has not run yet
			s.mu.Lock()
			if s.quit {
				s.mu.Unlock()
				c.Close() // as grpc-go's handleRawConn does once quit has fired
				return
			}
			s.conns.Add(1)
			s.mu.Unlock()
			defer s.conns.Done()
			c.SetDeadline(time.Now().Add(runWait))
			io.WriteString(c, "ok")
			c.Close()
		}()
	}
}

func (s *lateServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.quit = true
	for _, ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
	s.conns.Wait()
	return nil
}

// TestRunWaitsForTheServerToTakeEveryConnection: Run stops accepting, then
// waits until the server has taken up every accepted connection before it
// calls Shutdown, so a server that drops unregistered connections on
// shutdown drops none. The control calls the same Shutdown directly.
func TestRunWaitsForTheServerToTakeEveryConnection(t *testing.T) {
	const delay = 200 * time.Millisecond
	read := func(addr net.Addr) (string, error) {
		c, err := net.DialTimeout("tcp", addr.String(), runWait)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(runWait))
		b, err := io.ReadAll(c)
		return string(b), err
	}

	srv := newLateServer(delay)
	g := runGeneration(t, handoff.RunConfig{}, srv)
	addr := g.waitReady(t)
	got := make(chan string, 1)
	go func() { b, err := read(addr); got <- fmt.Sprint(b, err) }()
	<-srv.accepted
	g.stop() // the server is asked to stop before it has registered the connection
	if err := g.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b := <-got; b != "ok<nil>" {
		t.Errorf("connection accepted just before the stop got %q, want \"ok\"", b)
	}

	// The control: the server's own stop alone drops the connection.
	control := newLateServer(delay)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- control.Serve(ln) }()
	go func() { b, err := read(ln.Addr()); got <- fmt.Sprint(b, err) }()
	<-control.accepted
	control.Shutdown(context.Background())
	<-served
	if b := <-got; b == "ok<nil>" {
		t.Errorf("without Run's barrier the connection was still answered; the test does not show what the barrier prevents")
	}
}

// stubServer is a Server whose methods do what a test asks.
type stubServer struct {
	serve    func(net.Listener) error
	shutdown func(context.Context) error
	closed   atomic.Bool
}

func (s *stubServer) Serve(ln net.Listener) error        { return s.serve(ln) }
func (s *stubServer) Shutdown(ctx context.Context) error { return s.shutdown(ctx) }
func (s *stubServer) Close() error                       { s.closed.Store(true); return nil }

// acceptAll accepts until ln fails, closing what it accepts.
func acceptAll(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		c.Close()
	}
}

func TestRunErrors(t *testing.T) {
	t.Run("nil server", func(t *testing.T) {
		if err := handoff.Run(context.Background(), handoff.RunConfig{}, "tcp", "127.0.0.1:0", nil); err == nil {
			t.Error("Run accepted a nil Server")
		}
	})
	t.Run("negative timeout", func(t *testing.T) {
		err := handoff.Run(context.Background(), handoff.RunConfig{ShutdownTimeout: -time.Second}, "tcp", "127.0.0.1:0", helloServer(""))
		if err == nil || !strings.Contains(err.Error(), "ShutdownTimeout") {
			t.Errorf("Run with a negative ShutdownTimeout returned %v", err)
		}
	})
	t.Run("activation without a path", func(t *testing.T) {
		cfg := handoff.RunConfig{Config: handoff.Config{Activation: true}}
		err := handoff.Run(context.Background(), cfg, "tcp", "127.0.0.1:0", helloServer(""))
		if err == nil || !strings.Contains(err.Error(), "Activation") {
			t.Errorf("Run with Activation and no Path returned %v", err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		err := handoff.Run(context.Background(), handoff.RunConfig{}, "tcp", "127.0.0.1:99999", helloServer(""))
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("Run on a bad address returned %v, want a *net.OpError", err)
		}
	})
	t.Run("Serve fails", func(t *testing.T) {
		boom := errors.New("boom")
		srv := &stubServer{
			serve:    func(ln net.Listener) error { return boom },
			shutdown: func(context.Context) error { return nil },
		}
		err := handoff.Run(context.Background(), handoff.RunConfig{}, "tcp", "127.0.0.1:0", srv)
		if !errors.Is(err, boom) {
			t.Errorf("Run returned %v, want Serve's error", err)
		}
	})
	t.Run("Shutdown too slow", func(t *testing.T) {
		srv := &stubServer{
			serve: acceptAll,
			shutdown: func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			},
		}
		ctx, cancel := context.WithCancel(context.Background())
		cfg := handoff.RunConfig{ShutdownTimeout: 50 * time.Millisecond, OnReady: func(net.Addr) { cancel() }}
		err := handoff.Run(ctx, cfg, "tcp", "127.0.0.1:0", srv)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run returned %v, want an error wrapping %v", err, context.DeadlineExceeded)
		}
		if !srv.closed.Load() {
			t.Error("Run did not Close the server whose Shutdown timed out")
		}
	})
	t.Run("Path in use by a file", func(t *testing.T) {
		path := sockPath(t)
		if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := handoff.Run(context.Background(), handoff.RunConfig{Config: handoff.Config{Path: path}}, "tcp", "127.0.0.1:0", helloServer(""))
		if err == nil {
			t.Error("Run with a Path that is a regular file returned nil")
		}
	})
}
