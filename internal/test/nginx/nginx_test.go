package nginx

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/tooltest"
)

func TestParseStatus(t *testing.T) {
	const page = "Active connections: 1 \nserver accepts handled requests\n 12 11 345 \nReading: 0 Writing: 1 Waiting: 0 \n"
	st, err := parseStatus(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if st != (Status{Accepts: 12, Handled: 11, Requests: 345}) {
		t.Errorf("parsed %+v", st)
	}
	if _, err := parseStatus(strings.NewReader("Active connections: 1\n")); err == nil {
		t.Error("a page without counters parsed")
	}
}

func TestServer(t *testing.T) {
	s := start(t, Config{Workers: 2})
	if pids, err := s.Workers(); err != nil || len(pids) != 2 {
		t.Errorf("workers %v (%v), want 2", pids, err)
	}
	before, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != Body {
		t.Fatalf("GET /: %s %q %v", resp.Status, body, err)
	}
	after, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	// The GET and the second status request.
	if got := after.Requests - before.Requests; got != 2 {
		t.Errorf("nginx counted %d requests between two status requests with one GET, want 2", got)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr + "/"); err == nil {
		t.Error("nginx still answers after Stop")
	}
}

// TestProxy checks the proxy mode: requests reach the upstream with their
// method and body, and share a few kept connections to it rather than
// opening one each.
func TestProxy(t *testing.T) {
	var conns, requests atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: reading the body: %v", err)
		}
		fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	s := start(t, Config{Upstream: up.Listener.Addr().String()})
	if !strings.Contains(s.Conf, "keepalive 64;") || !strings.Contains(s.Conf, "proxy_next_upstream off;") {
		t.Errorf("the configuration lacks the upstream keep-alive settings:\n%s", s.Conf)
	}
	const n = 50
	for i := range n {
		// A client connection per request: only nginx keeps connections.
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr+"/", strings.NewReader(fmt.Sprint(i)))
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST %d", i); err != nil || resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("POST through nginx: %s %q %v, want 200 %q", resp.Status, body, err, want)
		}
	}
	if got := requests.Load(); got != n {
		t.Errorf("the upstream saw %d requests, want %d", got, n)
	}
	// One at a time, so one kept connection would do; allow a few.
	if got := conns.Load(); got > 5 {
		t.Errorf("nginx opened %d connections to the upstream for %d requests one after another; it keeps none alive", got, n)
	}
}

// TestReload checks that Reload replaces the workers, as nginx -s reload
// does, and that nginx answers on the same address afterwards.
func TestReload(t *testing.T) {
	s := start(t, Config{Workers: 2})
	before, err := s.Workers()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	// The old workers leave once idle; wait, bounded, until the master's
	// children are two new ones.
	var after []int
	for range 100 {
		if after, err = s.Workers(); err == nil && len(after) == 2 && !slices.ContainsFunc(after, func(p int) bool { return slices.Contains(before, p) }) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(after) != 2 || slices.ContainsFunc(after, func(p int) bool { return slices.Contains(before, p) }) {
		t.Fatalf("workers %v before the reload and %v 5s after it; want two new ones", before, after)
	}
	if _, err := s.Status(); err != nil {
		t.Errorf("after the reload: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Error("Reload of a stopped nginx: no error")
	}
}

// start runs nginx for the test. Without nginx the test skips, except in
// CI (see package tooltest).
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	tooltest.Need(t, Available)
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}
