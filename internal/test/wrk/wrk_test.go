package wrk_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/tooltest"
	"github.com/b93f8b21/reuseport/internal/test/wrk"
)

// TestConnectionClose checks what the throughput benchmark relies on: that
// wrk with "Connection: close" opens a connection per request, and without
// it keeps them alive.
func TestConnectionClose(t *testing.T) {
	tooltest.Need(t, wrk.Available)
	for _, close := range []bool{true, false} {
		var conns, requests atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			requests.Add(1)
			w.Write([]byte("hello\n"))
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		res, err := wrk.Run(context.Background(), wrk.Config{URL: srv.URL + "/", Threads: 1, Conns: 4, Duration: time.Second, Close: close})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests < 100 || res.Errors.Total() != 0 || res.RPS() <= 0 || res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
			t.Fatalf("close=%t: implausible result %+v", close, res)
		}
		if requests.Load() < res.Requests {
			t.Errorf("close=%t: wrk reports %d requests, the server saw %d", close, res.Requests, requests.Load())
		}
		if close && conns.Load() < requests.Load() {
			t.Errorf("Connection: close: %d requests over %d connections", requests.Load(), conns.Load())
		}
		// wrk may open one more than asked; what matters is that most
		// requests share a connection.
		if !close && requests.Load() < 10*conns.Load() {
			t.Errorf("keep-alive: %d requests over %d connections", requests.Load(), conns.Load())
		}
	}
}

// TestPost checks that wrk sends the method and body it is given, however
// awkward the body's bytes, on every request.
func TestPost(t *testing.T) {
	tooltest.Need(t, wrk.Available)
	const body = "it's \"quoted\", back\\slashed, 100%\n\x00\xff"
	var requests, wrong atomic.Int64
	var first atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || string(b) != body {
			wrong.Add(1)
			first.CompareAndSwap(nil, fmt.Sprintf("%s %q %v", r.Method, b, err))
		}
		w.Write([]byte("hello\n"))
	}))
	defer srv.Close()
	res, err := wrk.Run(context.Background(), wrk.Config{URL: srv.URL + "/", Threads: 1, Conns: 2, Duration: time.Second, Method: http.MethodPost, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 100 || res.Errors.Total() != 0 {
		t.Fatalf("implausible result %v", res)
	}
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d of %d requests were not the POST asked for; the first: %v", n, requests.Load(), first.Load())
	}
}

func TestCommand(t *testing.T) {
	c := wrk.Config{URL: "http://127.0.0.1:8080/", Threads: 2, Conns: 64, Duration: 8 * time.Second, Close: true}
	want := "wrk -t2 -c64 -d8s --latency -H 'Connection: close' http://127.0.0.1:8080/"
	if got := c.Command(); got != want {
		t.Errorf("Command() = %q, want %q", got, want)
	}
	c = wrk.Config{URL: "http://127.0.0.1:8080/", Threads: 2, Conns: 64, Duration: 20 * time.Second, Method: "POST", Body: "it's"}
	want = `wrk -s <(echo 'wrk.method = "POST" wrk.body = "it\039s" wrk.headers["Content-Type"] = "application/octet-stream"') -t2 -c64 -d20s --latency http://127.0.0.1:8080/`
	if got := c.Command(); got != want {
		t.Errorf("Command() = %q, want %q", got, want)
	}
}
