package fasthttpdrain_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/fasthttpdrain"
)

var (
	_ handoff.Server = (*fasthttpdrain.Server)(nil)
	_ io.Closer      = (*fasthttpdrain.Server)(nil)
)

// testServer is a drained fasthttp server on a loopback port.
type testServer struct {
	d      *fasthttpdrain.Server
	addr   string
	dial   func() (net.Conn, error)
	served <-chan error // Serve's result, once it has returned; closed then

	entered chan struct{} // a request to /slow has reached its handler
	release func()        // lets /slow answer
	states  chan fasthttp.ConnState
}

// setup is one way of serving: plain, with fasthttp's per-IP wrapper
// around each connection, or TLS.
type setup struct {
	name  string
	setup func(t *testing.T, s *fasthttp.Server)
	tls   bool
}

var setups = []setup{
	{name: "plain"},
	{name: "MaxConnsPerIP", setup: func(t *testing.T, s *fasthttp.Server) { s.MaxConnsPerIP = 100 }},
	{name: "TLS", tls: true, setup: func(t *testing.T, s *fasthttp.Server) {
		cert, key, err := fasthttp.GenerateTestCertificate("localhost")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AppendCertEmbed(cert, key); err != nil {
			t.Fatal(err)
		}
	}},
}

// start serves a drained fasthttp server that answers "ok", blocks on /slow
// until ts.release is closed, and hijacks /echo into an echo server.
func start(t *testing.T, grace time.Duration, how setup) *testServer {
	t.Helper()
	released := make(chan struct{})
	served := make(chan error, 1)
	ts := &testServer{
		served:  served,
		entered: make(chan struct{}, 16),
		release: sync.OnceFunc(func() { close(released) }),
		states:  make(chan fasthttp.ConnState, 64),
	}
	t.Cleanup(ts.release)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			switch string(ctx.Path()) {
			case "/slow":
				ts.entered <- struct{}{}
				<-released
			case "/echo":
				ctx.Hijack(func(c net.Conn) { io.Copy(c, c) })
			}
			ctx.WriteString("ok")
		},
		ConnState: func(_ net.Conn, state fasthttp.ConnState) {
			select {
			case ts.states <- state:
			default:
			}
		},
		Logger: discard{},
	}
	if how.setup != nil {
		how.setup(t, srv)
	}
	ts.d = fasthttpdrain.NewServer(srv)
	ts.d.IdleGrace = grace
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ts.dial = func() (net.Conn, error) { return net.DialTimeout("tcp", ts.addr, 5*time.Second) }
	if how.tls {
		ts.dial = func() (net.Conn, error) {
			d := &net.Dialer{Timeout: 5 * time.Second}
			return tls.DialWithDialer(d, "tcp", ts.addr, &tls.Config{InsecureSkipVerify: true})
		}
		go func() { served <- ts.d.ServeTLS(ln, "", ""); close(served) }()
	} else {
		go func() { served <- ts.d.Serve(ln); close(served) }()
	}
	t.Cleanup(func() {
		ts.d.Close()
		select {
		case <-ts.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return ts
}

type discard struct{}

func (discard) Printf(string, ...any) {}

// client is one keep-alive connection to the server.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (ts *testServer) connect(t *testing.T) *client {
	t.Helper()
	c, err := ts.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes a POST request for path.
func (c *client) send(path string) {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST " + path + " HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello"
	if _, err := io.WriteString(c.c, req); err != nil {
		c.t.Fatalf("sending %s: %v", path, err)
	}
}

// receive reads a response, which must be 200, and reports whether it
// said "Connection: close".
func (c *client) receive() (closing bool) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("response %s %q: %v", resp.Status, body, err)
	}
	return resp.Close
}

func (c *client) do(path string) (closing bool) {
	c.t.Helper()
	c.send(path)
	return c.receive()
}

// closed waits for the server to close the connection and returns what
// the read saw: io.EOF for a clean close.
func (c *client) closed() error {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.br.Read(make([]byte, 1))
	if n > 0 {
		c.t.Fatalf("the server sent more after its response")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("the server left the connection open for 10s")
	}
	return err
}

// shutdown runs Shutdown in the background.
func (ts *testServer) shutdown(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- ts.d.Shutdown(ctx) }()
	return done
}

func waitErr(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not return in 15s", what)
		return nil
	}
}

// wantShutdown waits for the Shutdown that done reports on and fails the
// test if it returned an error.
func wantShutdown(t *testing.T, done <-chan error) {
	t.Helper()
	if err := waitErr(t, "Shutdown", done); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// wantEOF fails the test unless the server closed the connection cleanly:
// err is what reading from it ended with.
func wantEOF(t *testing.T, what string, err error) {
	t.Helper()
	if err != io.EOF {
		t.Errorf("%s: %v, want EOF", what, err)
	}
}

func notYet(t *testing.T, what string, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned (%v) while a connection was still open", what, err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestIdleConnAnswered: a connection idle in keep-alive when Shutdown
// begins stays open, and a request sent on it within IdleGrace is answered,
// with "Connection: close". Shutdown stops accepting at once and returns
// once that connection has closed.
func TestIdleConnAnswered(t *testing.T) {
	for _, how := range setups {
		t.Run(how.name, func(t *testing.T) {
			ts := start(t, 10*time.Second, how)
			c := ts.connect(t)
			if c.do("/") {
				t.Fatal("a response before Shutdown said Connection: close")
			}
			done := ts.shutdown(context.Background())
			if err := waitErr(t, "Serve", ts.served); err != nil {
				t.Errorf("Serve returned %v after Shutdown, want nil", err)
			}
			if nc, err := net.DialTimeout("tcp", ts.addr, 5*time.Second); err == nil {
				nc.Close()
				t.Error("a new connection was accepted after Shutdown began")
			}
			notYet(t, "Shutdown", done)
			if !c.do("/") {
				t.Error("a response during the drain did not say Connection: close")
			}
			wantEOF(t, "after the last response", c.closed())
			wantShutdown(t, done)
		})
	}
}

// TestIdleConnClosedAfterGrace: a connection left idle is closed once it has
// been idle for IdleGrace, and not before; Shutdown then returns.
func TestIdleConnClosedAfterGrace(t *testing.T) {
	const grace = 500 * time.Millisecond
	for _, how := range setups {
		t.Run(how.name, func(t *testing.T) {
			ts := start(t, grace, how)
			c := ts.connect(t)
			c.do("/")
			idleSince := time.Now()
			done := ts.shutdown(context.Background())
			wantEOF(t, "the idle connection", c.closed())
			if idle := time.Since(idleSince); idle < grace {
				t.Errorf("the idle connection was closed after %v, before IdleGrace (%v)", idle, grace)
			}
			wantShutdown(t, done)
		})
	}
}

// TestInFlightRequestCompletes: a request whose handler runs when Shutdown
// begins gets its response, with "Connection: close", and Shutdown waits for
// it.
func TestInFlightRequestCompletes(t *testing.T) {
	ts := start(t, time.Second, setup{name: "plain"})
	c := ts.connect(t)
	c.send("/slow")
	<-ts.entered
	done := ts.shutdown(context.Background())
	notYet(t, "Shutdown", done)
	ts.release()
	if !c.receive() {
		t.Error("the response to the request in flight did not say Connection: close")
	}
	wantEOF(t, "after the response", c.closed())
	wantShutdown(t, done)
}

// TestNewConnWaitedFor: a connection accepted whose request has not arrived
// holds Shutdown, and the request, once sent, is answered.
func TestNewConnWaitedFor(t *testing.T) {
	ts := start(t, time.Second, setup{name: "plain"})
	c := ts.connect(t)
	ts.waitNew(t, 1) // through the hook the server had before NewServer
	done := ts.shutdown(context.Background())
	notYet(t, "Shutdown", done)
	if !c.do("/") {
		t.Error("the first request on a connection accepted before Shutdown did not get Connection: close")
	}
	wantShutdown(t, done)
}

// TestHijackDuringDrain: a request that hijacks its connection during the
// drain gets it, and Shutdown does not wait for it.
func TestHijackDuringDrain(t *testing.T) {
	ts := start(t, 10*time.Second, setup{name: "plain"})
	c := ts.connect(t)
	c.do("/")
	done := ts.shutdown(context.Background())
	notYet(t, "Shutdown", done)
	c.do("/echo")
	if _, err := io.WriteString(c.c, "ping"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo on the hijacked connection: %q, %v", got, err)
	}
	wantShutdown(t, done)
	// Still the handler's.
	if _, err := io.WriteString(c.c, "pong"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "pong" {
		t.Fatalf("echo on the hijacked connection after Shutdown: %q, %v", got, err)
	}
}

// TestShutdownContextExpires: when ctx ends before the drain does, Shutdown
// returns ctx.Err() and closes every connection left: one in a handler,
// one idle in keep-alive, one whose request never came.
func TestShutdownContextExpires(t *testing.T) {
	ts := start(t, time.Minute, setup{name: "plain"})
	busy, idle, silent := ts.connect(t), ts.connect(t), ts.connect(t)
	idle.do("/")
	busy.send("/slow")
	<-ts.entered
	// The silent connection must have been accepted: else it waits in
	// the listener's queue, which the shutdown resets.
	ts.waitNew(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := waitErr(t, "Shutdown", ts.shutdown(ctx)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown returned %v, want %v", err, context.DeadlineExceeded)
	}
	for name, c := range map[string]*client{"busy": busy, "idle": idle, "silent": silent} {
		if err := c.closed(); err == nil {
			t.Errorf("%s connection: read succeeded", name)
		}
	}
}

// waitNew waits until the server's own ConnState hook has seen n
// connections accepted.
func (ts *testServer) waitNew(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for n > 0 {
		select {
		case s := <-ts.states:
			if s == fasthttp.StateNew {
				n--
			}
		case <-timeout:
			t.Fatalf("%d connections not accepted after 10s", n)
		}
	}
}

// TestServeAfterShutdown: Shutdown works on a server that never served, and
// a Serve called after it closes its listener and returns.
func TestServeAfterShutdown(t *testing.T) {
	d := fasthttpdrain.NewServer(&fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}})
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of a server never served: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(ln); err != nil {
		t.Errorf("Serve after Shutdown: %v, want nil", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve after Shutdown left its listener open: Accept returned %v", err)
	}
}
