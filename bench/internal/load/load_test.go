package load_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/load"
)

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
				w.Write([]byte("hello\n"))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			res, err := load.Run(context.Background(), load.Config{Addr: addr(srv), Clients: 4, Duration: 300 * time.Millisecond, KeepAlive: keepAlive})
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Totals()
			if tot.Requests == 0 || tot.OK != tot.Requests || len(tot.Failures) != 0 {
				t.Fatalf("totals %+v, first errors %v; want every request answered", tot, res.FirstErrors)
			}
			srv.Close() // waits for the handlers, so served is final
			if int64(tot.OK) != served.Load() {
				t.Errorf("client counted %d answers, server served %d", tot.OK, served.Load())
			}
			if keepAlive && conns.Load() > 4 {
				t.Errorf("%d connections for 4 keep-alive clients", conns.Load())
			}
			if !keepAlive && conns.Load() != served.Load() {
				t.Errorf("%d connections for %d requests; want one each", conns.Load(), served.Load())
			}
			// A loaded machine may stall a client for most of the run, so
			// only the first interval is sure to hold requests.
			ivs := res.Intervals(100 * time.Millisecond)
			if len(ivs) < 1 || len(ivs) > 3 {
				t.Fatalf("%d intervals of 100ms in a 300ms run, want 1 to 3: %+v", len(ivs), ivs)
			}
			sum := 0
			for i, iv := range ivs {
				sum += iv.OK + iv.Failed
				if iv.At != time.Duration(i)*100*time.Millisecond || (i == 0 && iv.OK == 0) || iv.P50 > iv.P99 || iv.P99 > iv.Max {
					t.Errorf("interval %d: %+v", i, iv)
				}
			}
			if sum != tot.Requests {
				t.Errorf("intervals hold %d requests, totals %d", sum, tot.Requests)
			}
		})
	}
}

func TestRunClassifiesFailures(t *testing.T) {
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return ln.Addr().String()
	}
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer status.Close()
	hangup := listen(t, func(c net.Conn) { c.Read(make([]byte, 512)); c.Close() })
	reset := listen(t, func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	silent := listen(t, func(c net.Conn) { time.Sleep(time.Second); c.Close() })
	for _, tc := range []struct {
		name string
		addr string
		want load.Failure
	}{
		{"refused", refused(), load.Refused},
		{"status", addr(status), load.BadStatus},
		{"eof", hangup, load.EOF},
		{"reset", reset, load.Reset},
		{"timeout", silent, load.Timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := load.Run(context.Background(), load.Config{Addr: tc.addr, Clients: 1, Duration: 50 * time.Millisecond, Timeout: 200 * time.Millisecond, MaxRequests: 3})
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Totals()
			if tot.Requests == 0 || tot.OK != 0 || tot.Failures[tc.want] != tot.Requests {
				t.Fatalf("totals %+v, first errors %v; want every request to fail with %v", tot, res.FirstErrors, tc.want)
			}
		})
	}
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// listen serves every connection with handle until the test ends.
func listen(t *testing.T, handle func(net.Conn)) string {
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
