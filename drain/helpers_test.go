package drain_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// timeout bounds every wait in these tests; reaching it is a failure.
const timeout = 10 * time.Second

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(timeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// hello answers "hello" to every request.
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })

// get sends a GET for path on c and reads the response.
func get(c net.Conn, path string) (*http.Response, string, error) {
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return nil, "", err
	}
	return readResponse(c)
}

func readResponse(c net.Conn) (*http.Response, string, error) {
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// wantHello checks that a response is a complete 200 "hello" and that the
// server announced it would close the connection.
func wantHello(t *testing.T, what string, resp *http.Response, body string, err error) {
	t.Helper()
	switch {
	case err != nil:
		t.Errorf("%s: no response: %v", what, err)
	case resp.StatusCode != http.StatusOK || body != "hello":
		t.Errorf("%s: got %s %q, want 200 \"hello\"", what, resp.Status, body)
	case !resp.Close:
		t.Errorf("%s: response lacks Connection: close although keep-alives are off", what)
	}
}

// wantClosed checks that the server closed c without sending anything.
func wantClosed(t *testing.T, what string, c net.Conn) {
	t.Helper()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !isHangUp(err) {
		t.Errorf("%s: read %d bytes, %v; want the server to close the connection", what, n, err)
	}
}

// isHangUp reports whether err is what a client sees when the server
// closes a connection: EOF, or a reset when the server had unread input.
func isHangUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errConnReset)
}

// states records the ConnState transitions of an http.Server by the
// client's address, so a test can wait until the server has got as far as
// it needs.
type states struct {
	mu      sync.Mutex
	seen    map[string][]http.ConnState
	changed chan struct{}
}

func newStates() *states {
	return &states{seen: make(map[string][]http.ConnState), changed: make(chan struct{})}
}

func (s *states) hook(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr := c.RemoteAddr().String()
	s.seen[addr] = append(s.seen[addr], state)
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait blocks until the server has reported state for the client c.
func (s *states) wait(t *testing.T, c net.Conn, state http.ConnState) {
	t.Helper()
	deadline := time.After(timeout)
	addr := c.LocalAddr().String()
	for {
		s.mu.Lock()
		seen, changed := s.seen[addr], s.changed
		s.mu.Unlock()
		for _, st := range seen {
			if st == state {
				return
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the server never reported %v for %s (saw %v)", state, addr, seen)
		}
	}
}

// serve runs serve(ln) in a goroutine; the returned channel yields its error.
func serve(serve func(net.Listener) error, ln net.Listener) <-chan error {
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	return done
}

// shutdown runs f in a goroutine; the returned channel yields its error.
func shutdown(f func(context.Context) error, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	return done
}

func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("%s: not done after %v", what, timeout)
		panic("unreachable")
	}
}

// pending checks that nothing has arrived on ch yet.
func pending[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: done too early, with %v", what, v)
	case <-time.After(50 * time.Millisecond):
	}
}

// checkLeaks fails the test if goroutines or file descriptors opened during
// it are still there once it ends (after its other cleanups).
func checkLeaks(t *testing.T) {
	t.Helper()
	// Where the OS lists no descriptors both counts are 0: only goroutines
	// are checked.
	openFDs := func() int { n, _ := testenv.OpenFDs(); return n }
	goroutines, fds := runtime.NumGoroutine(), openFDs()
	t.Cleanup(func() {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			g, f := runtime.NumGoroutine(), openFDs()
			if g <= goroutines && f <= fds {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("leak: %d goroutines (was %d), %d fds (was %d)\n%s", g, goroutines, f, fds, buf)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
