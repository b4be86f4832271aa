package loadgen_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

// serve runs a raw TCP server on loopback that answers each connection with
// handle, until the test ends.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

func readRequest(c net.Conn) {
	buf := make([]byte, 1024)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.Read(buf)
}

// TestRunSeesEveryOutcome checks the harness reports success and each kind
// of failure it claims to detect, so a restart test reading 0 failures from
// it is reading a real zero.
func TestRunSeesEveryOutcome(t *testing.T) {
	closedAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name    string
		addr    string
		failure string
	}{
		{"ok", serve(t, func(c net.Conn) {
			defer c.Close()
			readRequest(c)
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\n\r\nhello from pid=%d\n", os.Getpid())
		}), ""},
		{"closed without response", serve(t, func(c net.Conn) {
			readRequest(c)
			c.Close()
		}), "read: eof before response"},
		{"reset", serve(t, func(c net.Conn) {
			readRequest(c)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}), "read: reset"},
		{"server error", serve(t, func(c net.Conn) {
			defer c.Close()
			readRequest(c)
			fmt.Fprint(c, "HTTP/1.0 503 Service Unavailable\r\n\r\n")
		}), "response: status HTTP/1.0 503 Service Unavailable"},
		{"nobody listening", closedAddr, "dial: refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: tt.addr, Clients: 4, Requests: 40, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests() != 40 {
				t.Fatalf("sent %d requests, want 40", r.Requests())
			}
			if tt.failure == "" {
				if r.Failed() != 0 {
					t.Fatalf("want no failures, got %s", r)
				}
				if got := r.PIDs()[os.Getpid()]; got != 40 {
					t.Fatalf("pid=%d named in %d responses, want 40", os.Getpid(), got)
				}
				return
			}
			if got := r.Failures[tt.failure]; got != 40 {
				t.Fatalf("want 40 failures of kind %q, got %s", tt.failure, r)
			}
		})
	}
}

func TestRunNeedsAnEnd(t *testing.T) {
	if _, err := loadgen.Run(context.Background(), loadgen.Config{Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("a run with neither Duration nor Requests was accepted")
	}
}

func TestTimeoutIsBounded(t *testing.T) {
	const timeout = 200 * time.Millisecond
	silent := make(chan struct{})
	defer close(silent)
	addr := serve(t, func(c net.Conn) {
		<-silent // never answer while the test runs
		c.Close()
	})
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Clients: 2, Requests: 2, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failures["read: timeout"] != 2 {
		t.Fatalf("want 2 read timeouts, got %s", r)
	}
	// The server never answers nor closes, so only the timeout ended the
	// requests; a loaded machine can only make them last longer.
	if r.Max() < timeout {
		t.Fatalf("requests with a %v timeout failed after %v", timeout, r.Max())
	}
}

// TestRunCountsEveryRequest checks, against a real net/http server's own
// counters, that every request the server answered is counted once, that
// keep-alive clients reuse their connections and the others do not, and
// that the intervals add up to the run.
func TestRunCountsEveryRequest(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		name := "close"
		if keepAlive {
			name = "keep-alive"
		}
		t.Run(name, func(t *testing.T) {
			var served, conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				served.Add(1)
				fmt.Fprintf(w, "hello from pid=%d\n", os.Getpid())
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			const clients = 4
			r, err := loadgen.Run(context.Background(), loadgen.Config{
				Addr: srv.Listener.Addr().String(), Clients: clients, Duration: 300 * time.Millisecond, KeepAlive: keepAlive,
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests() == 0 || r.OK() != r.Requests() || r.Failed() != 0 {
				t.Fatalf("want every request answered, got %s", r)
			}
			if got := r.PIDs()[os.Getpid()]; got != r.OK() {
				t.Errorf("pid=%d named in %d of %d responses", os.Getpid(), got, r.OK())
			}
			srv.Close() // waits for the handlers, so served is final
			if int64(r.OK()) != served.Load() {
				t.Errorf("client counted %d answers, server served %d", r.OK(), served.Load())
			}
			if keepAlive && conns.Load() > clients {
				t.Errorf("%d connections for %d keep-alive clients", conns.Load(), clients)
			}
			if !keepAlive && conns.Load() != served.Load() {
				t.Errorf("%d connections for %d requests; want one each", conns.Load(), served.Load())
			}
			if !slices.IsSortedFunc(r.Samples, func(a, b loadgen.Sample) int { return cmp.Compare(a.Start, b.Start) }) {
				t.Error("samples are not in the order they started")
			}
			if last := r.Samples[len(r.Samples)-1].Start; last >= 300*time.Millisecond {
				t.Errorf("a request started %v into a 300ms run", last)
			}
			// A loaded machine may stall a client for most of the run, so
			// only the first interval is sure to hold requests.
			const width = 100 * time.Millisecond
			ivs := r.Intervals(width)
			if len(ivs) < 1 || len(ivs) > 3 {
				t.Fatalf("%d intervals of %v in a 300ms run, want 1 to 3: %+v", len(ivs), width, ivs)
			}
			sum := 0
			for i, iv := range ivs {
				sum += iv.OK + iv.Failed
				if iv.At != time.Duration(i)*width || (i == 0 && iv.OK == 0) || iv.P50 > iv.P99 || iv.P99 > iv.Max {
					t.Errorf("interval %d: %+v", i, iv)
				}
			}
			if sum != r.Requests() {
				t.Errorf("intervals hold %d requests, the run %d", sum, r.Requests())
			}
		})
	}
}

// TestKeepAliveReconnects checks that a keep-alive client whose connection
// breaks counts that failure and carries on over a new connection.
func TestKeepAliveReconnects(t *testing.T) {
	var n atomic.Int64
	addr := serve(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			req.Body.Close()
			if n.Add(1)%3 == 0 {
				return // every third request: hang up instead of answering
			}
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
		}
	})
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Clients: 1, Requests: 30, KeepAlive: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests() != 30 || r.Failures["read: eof before response"] != 10 || r.OK() != 20 {
		t.Fatalf("want 20 answered and 10 eof failures of 30, got %s", r)
	}
}

// TestKeepAliveHonoursConnectionClose checks that a server closing a kept
// connection after saying so (Connection: close, as net/http does once it
// shuts down) costs no request: the client opens a new connection.
func TestKeepAliveHonoursConnectionClose(t *testing.T) {
	var conns atomic.Int64
	addr := serve(t, func(c net.Conn) {
		defer c.Close()
		conns.Add(1)
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		req.Body.Close()
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n")
	})
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Clients: 1, Requests: 20, KeepAlive: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() != 20 {
		t.Fatalf("want all 20 answered, got %s", r)
	}
	if conns.Load() != 20 {
		t.Errorf("%d connections for 20 requests each closed by the server, want 20", conns.Load())
	}
}

// TestPOSTOverKeepAlive: every request carries the method and body asked
// for, over one connection per client.
func TestPOSTOverKeepAlive(t *testing.T) {
	var conns, posts, bad atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 64)
		n, _ := r.Body.Read(b)
		if r.Method == http.MethodPost && string(b[:n]) == "payload" {
			posts.Add(1)
		} else {
			bad.Add(1)
		}
		fmt.Fprint(w, "pid=7")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	res, err := loadgen.Run(t.Context(), loadgen.Config{
		Addr: srv.Listener.Addr().String(), Clients: 3, Requests: 30,
		KeepAlive: true, Method: http.MethodPost, Body: "payload",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed() != 0 || posts.Load() != 30 || bad.Load() != 0 {
		t.Fatalf("%v; the server saw %d POSTs with the body and %d other requests, want 30 and 0", res, posts.Load(), bad.Load())
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 keep-alive clients", n)
	}
	if got := res.PIDs()[7]; got != 30 {
		t.Errorf("pid 7 answered %d requests, want 30", got)
	}
}

type fakeClient struct {
	n      int
	closed *atomic.Int64
}

func (c *fakeClient) Do(time.Time) (int, error) {
	c.n++
	if c.n%2 == 0 {
		return 0, loadgen.Stage("rpc", fmt.Errorf("unavailable"))
	}
	return 42, nil
}

func (c *fakeClient) Close() error { c.closed.Add(1); return nil }

// TestNewClient: a client of the caller's own is used, its failures are
// classified by the stage it names, and every client is closed.
func TestNewClient(t *testing.T) {
	var closed atomic.Int64
	res, err := loadgen.Run(t.Context(), loadgen.Config{
		Clients: 2, Requests: 10,
		NewClient: func() (loadgen.Client, error) { return &fakeClient{closed: &closed}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests() != 10 || res.Failures["rpc: other"] == 0 || res.Failed()+res.PIDs()[42] != 10 {
		t.Errorf("got %v with failures %v, want 10 requests, some failed as \"rpc: other\"", res, res.Failures)
	}
	if closed.Load() != 2 {
		t.Errorf("%d of 2 clients closed", closed.Load())
	}
}
