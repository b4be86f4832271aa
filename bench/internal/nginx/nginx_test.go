package nginx

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
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
	s := start(t, 2)
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

// TestReload checks that Reload replaces the workers, as nginx -s reload
// does, and that nginx answers on the same address afterwards.
func TestReload(t *testing.T) {
	s := start(t, 2)
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
// CI, which installs it and sets REUSEPORT_REQUIRE_TOOLS: there a missing
// nginx is a failure, so that these tests can never silently not run.
func start(t *testing.T, workers int) *Server {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("REUSEPORT_REQUIRE_TOOLS") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s, err := Start(context.Background(), workers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}
