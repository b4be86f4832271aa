package drain_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// envLoadDuration sets how long TestRestartUnderLoad runs each mode, as a
// time.Duration ("20s"); the default keeps the suite fast.
const envLoadDuration = "DRAIN_LOAD_DURATION"

// TestRestartUnderLoad restarts a server every 200ms while 32 clients send
// one HTTP/1.0 request per connection, or POSTs through one pool of
// keep-alive connections as a proxy does (Go's http.Transport, which does
// not retry a POST). Each generation serves duplicates of the descriptors
// of a reuseport group of two sockets, as a successor that received them
// would, so the sockets never close and any failure is the server's own.
// With drain no request may fail. With http.Server.Shutdown requests must
// fail in both shapes, or the harness would not see what drain prevents:
// one per connection, it drops a request read after the shutdown began; in
// keep-alive, it also closes idle connections at once.
func TestRestartUnderLoad(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	duration := 2 * time.Second
	if v := os.Getenv(envLoadDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", envLoadDuration, err)
		}
		duration = d
	}
	t.Run("drain", func(t *testing.T) {
		checkLeaks(t)
		r := restartUnderLoad(t, drainServer, duration, false)
		t.Logf("drain.Server.Shutdown: %v", r)
		if r.failed != 0 {
			t.Errorf("%d requests failed", r.failed)
		}
	})
	t.Run("stdlib", func(t *testing.T) {
		checkLeaks(t)
		r := restartUnderLoad(t, stdlibServer, duration, false)
		t.Logf("http.Server.Shutdown: %v", r)
		if r.failed == 0 {
			t.Errorf("no request failed in %d across %d restarts with http.Server.Shutdown; the harness does not see the loss drain prevents", r.ok, r.restarts)
		}
	})
	t.Run("drain/keep-alive", func(t *testing.T) {
		checkLeaks(t)
		r := restartUnderLoad(t, drainServer, duration, true)
		t.Logf("drain.Server.Shutdown, keep-alive POSTs: %v", r)
		if r.failed != 0 {
			t.Errorf("%d requests failed", r.failed)
		}
	})
	t.Run("stdlib/keep-alive", func(t *testing.T) {
		checkLeaks(t)
		r := restartUnderLoad(t, stdlibServer, duration, true)
		t.Logf("http.Server.Shutdown, keep-alive POSTs: %v", r)
		if r.failed == 0 {
			t.Errorf("no keep-alive POST failed in %d across %d restarts with http.Server.Shutdown; the harness does not see the loss drain prevents", r.ok, r.restarts)
		}
	})
}

type loadResult struct {
	ok, failed int64
	restarts   int
	errs       map[string]int
}

func (r *loadResult) String() string {
	var errs []string
	for e, n := range r.errs {
		errs = append(errs, fmt.Sprintf("%d× %s", n, e))
	}
	sort.Strings(errs)
	return fmt.Sprintf("%d restarts, %d requests, %d failed (%.1f per 100k) %s",
		r.restarts, r.ok+r.failed, r.failed, float64(r.failed)*1e5/float64(max(1, r.ok+r.failed)), strings.Join(errs, ", "))
}

func restartUnderLoad(t *testing.T, mk func(*http.Server) server, duration time.Duration, keepAlive bool) *loadResult {
	const clients, every = 32, 200 * time.Millisecond
	socks, err := reuseport.ListenGroup("tcp", "127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		t.Cleanup(func() { s.Close() })
	}
	addr := socks[0].Addr().String()

	type generation struct {
		server
		served []<-chan error
	}
	start := func() generation {
		g := generation{server: mk(&http.Server{Handler: hello})}
		for _, sock := range socks {
			g.served = append(g.served, serve(g.serve, dup(t, sock)))
		}
		return g
	}
	shutdown := func(g generation, what string) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := g.shutdown(ctx); err != nil {
			t.Errorf("%s: Shutdown: %v", what, err)
		}
		for _, served := range g.served {
			if err := recv(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s: Serve returned %v, want %v", what, err, http.ErrServerClosed)
			}
		}
	}

	send := func() error { return oneRequest(addr) }
	if keepAlive {
		tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: timeout}
		send = func() error { return post(client, "http://"+addr+"/") }
	}

	r := &loadResult{errs: make(map[string]int)}
	var mu sync.Mutex
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := send(); err != nil {
					failed.Add(1)
					mu.Lock()
					r.errs[errKind(err)]++
					mu.Unlock()
				} else {
					ok.Add(1)
				}
			}
		})
	}

	cur := start()
	var draining sync.WaitGroup
	for end := time.Now().Add(duration); time.Now().Before(end); r.restarts++ {
		time.Sleep(every)
		next := start()
		// A keep-alive drain lasts as long as its idle grace; generations
		// overlap, as they do across a handoff.
		old, what := cur, fmt.Sprintf("restart %d", r.restarts)
		draining.Go(func() { shutdown(old, what) })
		if !keepAlive {
			draining.Wait()
		}
		cur = next
	}
	close(stop)
	wg.Wait()
	draining.Wait()
	shutdown(cur, "last generation")
	r.ok, r.failed = ok.Load(), failed.Load()
	// Fewer successes than restarts means the clients were not really
	// running; a count tied to the machine's speed would flake under load.
	if r.ok < int64(r.restarts) {
		t.Errorf("only %d requests succeeded over %d restarts; the load did not run", r.ok, r.restarts)
	}
	return r
}

func oneRequest(addr string) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return err
	}
	resp, body, err := readResponse(c)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || body != "hello" {
		return fmt.Errorf("got %s %q", resp.Status, body)
	}
	return nil
}

// post sends a POST with a body through client, as a proxy forwards one.
func post(client *http.Client, url string) error {
	resp, err := client.Post(url, "text/plain", strings.NewReader("payload"))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		return fmt.Errorf("got %s %q", resp.Status, body)
	}
	return nil
}

// errKind drops the addresses from err so that errors group.
func errKind(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Op + ": " + opErr.Err.Error()
	}
	return err.Error()
}
