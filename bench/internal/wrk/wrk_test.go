package wrk_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/wrk"
)

// TestConnectionClose checks what the throughput benchmark relies on: that
// wrk with "Connection: close" opens a connection per request, and without
// it keeps them alive.
func TestConnectionClose(t *testing.T) {
	if err := wrk.Available(); err != nil {
		// CI installs wrk and sets REUSEPORT_REQUIRE_TOOLS: there its
		// absence is a failure, not a skip.
		if os.Getenv("REUSEPORT_REQUIRE_TOOLS") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
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

func TestCommand(t *testing.T) {
	c := wrk.Config{URL: "http://127.0.0.1:8080/", Threads: 2, Conns: 64, Duration: 8 * time.Second, Close: true}
	want := "wrk -t2 -c64 -d8s --latency -H 'Connection: close' http://127.0.0.1:8080/"
	if got := c.Command(); got != want {
		t.Errorf("Command() = %q, want %q", got, want)
	}
}
