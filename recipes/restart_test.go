//go:build darwin || freebsd || linux

package recipes_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

// recipe is the signature of Echo, Gin and Chi.
type recipe func(ctx context.Context, cfg handoff.RunConfig, addr string) error

const (
	// handoffs is how many times a test hands the socket to a successor.
	handoffs = 5
	// clients is how many goroutines send requests, each one at a time.
	clients = 8
	// between is how long the load runs between two handoffs.
	between = 300 * time.Millisecond
	// wait bounds every wait for a generation.
	wait = 15 * time.Second
	// maxRequests bounds what one client sends.
	maxRequests = 200_000
)

// generation is one Run of a recipe in a goroutine of the test process;
// its successor is another, started with the same Path.
type generation struct {
	ready chan net.Addr
	done  chan struct{} // closed once the recipe has returned err
	err   error
}

func startGeneration(t *testing.T, run recipe, path string) *generation {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &generation{ready: make(chan net.Addr, 1), done: make(chan struct{})}
	cfg := handoff.RunConfig{
		Config:          handoff.Config{Path: path},
		ShutdownTimeout: wait,
		OnReady:         func(a net.Addr) { g.ready <- a },
	}
	go func() {
		defer close(g.done)
		// Port 0 takes the predecessor's socket, whatever its port.
		g.err = run(ctx, cfg, "127.0.0.1:0")
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(wait):
			t.Errorf("a generation did not return %v after its context ended", wait)
		}
	})
	return g
}

func (g *generation) waitReady(t *testing.T) net.Addr {
	t.Helper()
	select {
	case a := <-g.ready:
		return a
	case <-g.done:
		t.Fatalf("the recipe returned before it served: %v", g.err)
	case <-time.After(wait):
		t.Fatalf("the recipe does not serve after %v", wait)
	}
	panic("unreachable")
}

func (g *generation) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-g.done:
		return g.err
	case <-time.After(wait):
		t.Fatalf("the recipe did not return within %v of its successor serving", wait)
	}
	panic("unreachable")
}

// load is what a keep-alive proxy sends: POSTs with a body, each on a
// connection kept open between requests, none retried.
type load struct {
	ok, failed, dials atomic.Int64
	stop              chan struct{}
	wg                sync.WaitGroup

	mu   sync.Mutex
	errs []string // the first few failures
}

func startLoad(t *testing.T, addr net.Addr) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	d := &net.Dialer{Timeout: wait}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			l.dials.Add(1)
			return d.DialContext(ctx, network, address)
		},
		MaxIdleConnsPerHost: clients,
	}
	client := &http.Client{Transport: tr, Timeout: wait}
	url := "http://" + addr.String() + "/echo"
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := range maxRequests {
				select {
				case <-l.stop:
					return
				default:
				}
				l.post(client, url, fmt.Sprintf("client %d request %d", c, i))
				// A pause leaves the connection idle, as a proxy's are
				// between requests: the moment a plain Shutdown closes it.
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
			}
		}()
	}
	t.Cleanup(func() {
		l.end()
		tr.CloseIdleConnections()
	})
	return l
}

func (l *load) post(client *http.Client, url, body string) {
	resp, err := client.Post(url, "text/plain", bytes.NewBufferString(body))
	if err == nil {
		var got []byte
		got, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || string(got) != body) {
			err = fmt.Errorf("%s: %q, want %q", resp.Status, got, body)
		}
	}
	if err == nil {
		l.ok.Add(1)
		return
	}
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 5 {
		l.errs = append(l.errs, err.Error())
	}
	l.mu.Unlock()
}

// end stops the clients and waits for them; it may be called twice.
func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// restarts is what restartUnderLoad saw.
type restarts struct {
	ok, failed, dials int64
	errs              []string
}

func (r restarts) String() string {
	return fmt.Sprintf("%d handoffs under %d keep-alive clients: %d requests answered, %d failed, on %d connections",
		handoffs, clients, r.ok, r.failed, r.dials)
}

// restartUnderLoad serves run, starts the load, and hands the socket over
// to a new generation of run handoffs times while the load runs. It fails
// t unless every handoff happened (the successor serves on the same
// address, the predecessor returns nil by itself) with the load running
// across it on kept-alive connections; the caller judges the failures.
func restartUnderLoad(t *testing.T, run recipe) restarts {
	path := filepath.Join(t.TempDir(), "handoff.sock")
	before := handoff.ReadStats()
	g := startGeneration(t, run, path)
	addr := g.waitReady(t)
	l := startLoad(t, addr)
	last := int64(0)
	for i := 1; i <= handoffs; i++ {
		time.Sleep(between)
		if n := l.ok.Load(); n == last {
			t.Fatalf("no request answered before handoff %d (%d failed: %q)", i, l.failed.Load(), l.errs)
		} else {
			last = n
		}
		next := startGeneration(t, run, path)
		if a := next.waitReady(t); a.String() != addr.String() {
			t.Fatalf("generation %d serves on %v, want its predecessor's %v", i, a, addr)
		}
		if err := g.wait(t); err != nil {
			t.Fatalf("generation %d returned %v once its successor served, want nil", i-1, err)
		}
		g = next
	}
	time.Sleep(between)
	l.end()
	r := restarts{ok: l.ok.Load(), failed: l.failed.Load(), dials: l.dials.Load(), errs: l.errs}
	if r.ok == last {
		t.Errorf("no request answered after the last handoff")
	}
	if got := handoff.ReadStats().HandedOver - before.HandedOver; got != handoffs {
		t.Errorf("handoff.ReadStats().HandedOver went up by %d, want %d", got, handoffs)
	}
	// Each handoff closes every connection once; many more requests than
	// connections means they were kept alive.
	if r.ok+r.failed < 10*r.dials {
		t.Errorf("%d requests on %d connections: the clients did not keep them alive", r.ok+r.failed, r.dials)
	}
	return r
}

// testRecipe is the test of a recipe: no request fails.
func testRecipe(t *testing.T, run recipe) {
	r := restartUnderLoad(t, run)
	t.Log(r)
	if r.failed != 0 {
		t.Errorf("%d requests failed across the handoffs, want 0; the first: %q", r.failed, r.errs)
	}
}
