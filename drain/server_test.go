package drain_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/drain"
)

// TestShutdownConnStates drains a server holding connections in every
// state: each request sent gets its response, connections idle in
// keep-alive stay open for IdleGrace and answer a request sent on them,
// and Shutdown returns only once all that is done.
func TestShutdownConnStates(t *testing.T) {
	checkLeaks(t)
	started, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", hello)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		hello(w, r)
	})
	st := newStates()
	d := drain.NewServer(&http.Server{Handler: mux, ConnState: st.hook})
	const grace = 500 * time.Millisecond
	d.IdleGrace = grace
	ln := listen(t)
	served := serve(d.Serve, ln)

	silent := dial(t, ln.Addr()) // accepted, has sent nothing yet
	st.wait(t, silent, http.StateNew)
	quiet := dial(t, ln.Addr()) // accepted, and will never send
	st.wait(t, quiet, http.StateNew)
	partial := dial(t, ln.Addr()) // has sent half a request
	io.WriteString(partial, "GET / HTTP/1.1\r\nHost: test\r\n")
	st.wait(t, partial, http.StateNew)
	active := dial(t, ln.Addr()) // its handler is running
	io.WriteString(active, "GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
	recv(t, "slow handler", started)
	var idle [2]net.Conn // idle in keep-alive
	for i := range idle {
		idle[i] = dial(t, ln.Addr())
		resp, body, err := get(idle[i], "/")
		if err != nil || body != "hello" || resp.Close {
			t.Fatalf("keep-alive request before the drain: %v %q %v", resp, body, err)
		}
		st.wait(t, idle[i], http.StateIdle)
	}

	shut := shutdown(d.Shutdown, context.Background())
	if err := recv(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want %v", err, http.ErrServerClosed)
	}
	pending(t, "Shutdown with three requests to answer", shut)

	// A client reusing an idle connection during the grace gets its answer.
	resp, body, err := get(idle[0], "/")
	wantHello(t, "request on a connection idle in keep-alive", resp, body, err)
	resp, body, err = get(silent, "/")
	wantHello(t, "connection silent until the drain", resp, body, err)
	io.WriteString(partial, "\r\n")
	resp, body, err = readResponse(partial)
	wantHello(t, "request completed during the drain", resp, body, err)
	// The other idle connection, and one that never sent a byte, are
	// closed once quiet for the grace.
	wantClosed(t, "connection left idle in keep-alive", idle[1])
	wantClosed(t, "connection that never sent a request", quiet)
	pending(t, "Shutdown with a handler running", shut)
	close(release)
	// Its handler began before the drain, when keep-alive was still on.
	resp, body, err = readResponse(active)
	if err != nil || body != "hello" {
		t.Fatalf("handler running when the drain began: %v %q %v", resp, body, err)
	}
	pending(t, "Shutdown with a connection idle for less than the grace", shut)
	for _, c := range []net.Conn{silent, partial, active, idle[0]} {
		wantClosed(t, "connection after its response", c)
	}
	if err := recv(t, "Shutdown", shut); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownConnSilentForOver5s: net/http treats a connection that has
// been new for over 5 seconds as idle, and http.Server.Shutdown closes it
// at once. Within its IdleGrace the drain must keep it, in cleartext and
// under TLS, and answer a request that arrives on it.
func TestShutdownConnSilentForOver5s(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 6.5s")
	}
	checkLeaks(t)
	certFile, keyFile, roots := selfSigned(t)
	start := func(tls bool) (*drain.Server, net.Conn, <-chan error) {
		st := newStates()
		d := drain.NewServer(&http.Server{Handler: hello, ConnState: st.hook})
		d.IdleGrace = 20 * time.Second
		ln := listen(t)
		serveFunc := d.Serve
		if tls {
			serveFunc = func(ln net.Listener) error { return d.ServeTLS(ln, certFile, keyFile) }
		}
		served := serve(serveFunc, ln)
		c := dial(t, ln.Addr())
		st.wait(t, c, http.StateNew)
		return d, c, served
	}
	d, c, served := start(false)
	dTLS, raw, servedTLS := start(true)
	c2 := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err := c2.Handshake(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6500 * time.Millisecond) // net/http compares whole seconds

	for _, s := range []struct {
		name   string
		d      *drain.Server
		c      net.Conn
		served <-chan error
	}{{"cleartext", d, c, served}, {"TLS", dTLS, c2, servedTLS}} {
		shut := shutdown(s.d.Shutdown, context.Background())
		recv(t, "Serve ("+s.name+")", s.served)
		time.Sleep(100 * time.Millisecond)
		resp, body, err := get(s.c, "/")
		wantHello(t, "request on a connection silent for 6.5s ("+s.name+")", resp, body, err)
		if err := recv(t, "Shutdown ("+s.name+")", shut); err != nil {
			t.Fatalf("Shutdown (%s): %v", s.name, err)
		}
	}
}

// TestShutdownSeveralListeners: Shutdown stops every listener Serve uses,
// and connections from each are answered.
func TestShutdownSeveralListeners(t *testing.T) {
	checkLeaks(t)
	st := newStates()
	d := drain.NewServer(&http.Server{Handler: hello, ConnState: st.hook})
	var lns []net.Listener
	var served []<-chan error
	var conns []net.Conn
	for range 3 {
		ln := listen(t)
		lns = append(lns, ln)
		served = append(served, serve(d.Serve, ln))
		c := dial(t, ln.Addr())
		st.wait(t, c, http.StateNew)
		conns = append(conns, c)
	}
	shut := shutdown(d.Shutdown, context.Background())
	for i, ch := range served {
		if err := recv(t, "Serve", ch); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve on listener %d returned %v, want %v", i, err, http.ErrServerClosed)
		}
		// Serve closes its listener, as http.Server.Serve does.
		if _, err := lns[i].Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("listener %d after Serve: Accept returned %v, want %v", i, err, net.ErrClosed)
		}
	}
	for _, c := range conns {
		resp, body, err := get(c, "/")
		wantHello(t, "request during the drain", resp, body, err)
	}
	if err := recv(t, "Shutdown", shut); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownBeforeServe: Serve after Shutdown returns at once, closing
// its listener, as http.Server.Serve does.
func TestShutdownBeforeServe(t *testing.T) {
	checkLeaks(t)
	d := drain.NewServer(&http.Server{Handler: hello})
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown with nothing to drain: %v", err)
	}
	ln := listen(t)
	if err := recv(t, "Serve", serve(d.Serve, ln)); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown returned %v, want %v", err, http.ErrServerClosed)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on the listener given to Serve: %v, want %v", err, net.ErrClosed)
	}
}

// TestShutdownTwice: concurrent and later calls all wait for the drain.
func TestShutdownTwice(t *testing.T) {
	checkLeaks(t)
	st := newStates()
	d := drain.NewServer(&http.Server{Handler: hello, ConnState: st.hook})
	ln := listen(t)
	served := serve(d.Serve, ln)
	c := dial(t, ln.Addr())
	st.wait(t, c, http.StateNew)
	first := shutdown(d.Shutdown, context.Background())
	second := shutdown(d.Shutdown, context.Background())
	recv(t, "Serve", served)
	pending(t, "first Shutdown", first)
	pending(t, "second Shutdown", second)
	resp, body, err := get(c, "/")
	wantHello(t, "request during two Shutdowns", resp, body, err)
	for _, ch := range []<-chan error{first, second} {
		if err := recv(t, "Shutdown", ch); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Errorf("third Shutdown: %v", err)
	}
}

// TestShutdownContextEnds: a client that never sends holds the drain only
// until the context ends; the connection is then in net/http's shutdown
// mode, and Close closes it.
func TestShutdownContextEnds(t *testing.T) {
	checkLeaks(t)
	st := newStates()
	d := drain.NewServer(&http.Server{Handler: hello, ConnState: st.hook})
	ln := listen(t)
	served := serve(d.Serve, ln)
	late := dial(t, ln.Addr())
	st.wait(t, late, http.StateNew)
	silent := dial(t, ln.Addr())
	st.wait(t, silent, http.StateNew)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown returned %v, want %v", err, context.DeadlineExceeded)
	}
	recv(t, "Serve", served)
	// As documented: from now on net/http drops a request unanswered.
	if resp, _, err := get(late, "/"); !isHangUp(err) {
		t.Errorf("request after the drain timed out: got %v, %v; want the connection closed", resp, err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wantClosed(t, "silent connection after Close", silent)
}

// TestShutdownLeavesHijacked: a hijacked connection neither holds the
// drain nor is closed by it or by Close.
func TestShutdownLeavesHijacked(t *testing.T) {
	checkLeaks(t)
	hijacked := make(chan net.Conn, 1)
	d := drain.NewServer(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		hijacked <- c
	})})
	ln := listen(t)
	served := serve(d.Serve, ln)
	c := dial(t, ln.Addr())
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
	sc := recv(t, "hijack", hijacked)
	defer sc.Close()

	if err := recv(t, "Shutdown", shutdown(d.Shutdown, context.Background())); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	recv(t, "Serve", served)
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := io.WriteString(sc, "still here"); err != nil {
		t.Fatalf("writing on the hijacked connection after Shutdown and Close: %v", err)
	}
	buf := make([]byte, len("still here"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("client of the hijacked connection read %q, %v", buf, err)
	}
}

// tempErrListener fails every Accept with a temporary error, as accept(2)
// does when the process is out of descriptors (EMFILE).
type tempErrListener struct {
	net.Listener
	accepts calls
}

type tempErr struct{}

func (tempErr) Error() string   { return "too many open files (fake)" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

func (l *tempErrListener) Accept() (net.Conn, error) {
	l.accepts.add()
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: tempErr{}}
}

// TestServeBacksOffOnTemporaryError: the temporary Accept error reaches
// http.Server.Serve unchanged, so it backs off (5ms, 10ms, … up to 1s)
// rather than spinning.
func TestServeBacksOffOnTemporaryError(t *testing.T) {
	checkLeaks(t)
	ln := &tempErrListener{Listener: listen(t)}
	var logged atomic.Int64
	d := drain.NewServer(&http.Server{Handler: hello, ErrorLog: log.New(writerFunc(func(p []byte) (int, error) {
		logged.Add(1)
		return len(p), nil
	}), "", 0)})
	served := serve(d.Serve, ln)
	at := ln.accepts.wait(t, "Accept", 5)
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := recv(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want %v", err, http.ErrServerClosed)
	}
	wantBackoff(t, "Accept call", at)
	if n := int64(ln.accepts.len()); logged.Load() != n {
		t.Errorf("http.Server logged %d Accept errors for %d Accept calls", logged.Load(), n)
	}
}

// calls records the instants at which something happened.
type calls struct {
	mu sync.Mutex
	at []time.Time
}

func (c *calls) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = append(c.at, time.Now())
}

func (c *calls) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

// wait returns the first n instants once there are n, and fails the test
// if there are not within timeout.
func (c *calls) wait(t *testing.T, what string, n int) []time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		at := slices.Clone(c.at)
		c.mu.Unlock()
		if len(at) >= n {
			return at[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d %ss after %v", len(at), n, what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantBackoff checks that the calls at the instants at came at least as far
// apart as http.Server spaces its Accept calls after temporary errors:
// 5ms, then twice the previous pause, up to 1s. A busy machine only spaces
// them further; a server that spins calls again within microseconds.
func wantBackoff(t *testing.T, what string, at []time.Time) {
	t.Helper()
	pause := 5 * time.Millisecond
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < pause {
			t.Errorf("%s %d came %v after the one before; want at least %v (backoff)", what, i+1, gap, pause)
		}
		pause = min(2*pause, time.Second)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
