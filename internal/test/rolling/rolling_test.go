package rolling_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
)

// The test binary doubles as the server: a plain reuseport HTTP server that
// leaves on SIGTERM, or, with ROLLING_TEST_STUBBORN, never leaves.
func TestMain(m *testing.M) {
	if addr := os.Getenv("ROLLING_TEST_SERVE"); addr != "" {
		serve(addr, os.Getenv("ROLLING_TEST_STUBBORN") != "")
		return
	}
	os.Exit(m.Run())
}

func serve(addr string, stubborn bool) {
	ln, err := reuseport.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d\n", os.Getpid())
	})}
	go srv.Serve(ln)
	fmt.Fprintln(os.Stderr, "serving")
	deadline := time.After(time.Minute) // bound a server the harness forgot
	for {
		select {
		case <-sigs:
			if stubborn {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.Shutdown(ctx)
			cancel()
			return
		case <-deadline:
			return
		}
	}
}

// freeAddr returns a loopback address for the workers of one test, whose
// port no other process can take until the test ends, whatever else runs
// on the machine. A connection bound to the port with reuseport.Control
// holds it: the workers, sharing the port the same way, bind beside it, and
// it takes none of their connections because it does not listen.
func freeAddr(t *testing.T) string {
	t.Helper()
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	d := net.Dialer{Control: reuseport.Control, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	hold, err := d.Dial("tcp", peer.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	return hold.LocalAddr().String()
}

func command(addr string, env ...string) func(w, g int) *exec.Cmd {
	return func(w, g int) *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), append(env, "ROLLING_TEST_SERVE="+addr)...)
		return cmd
	}
}

// wantRestartsInRun checks the instants of a run's restarts against what
// holds however slow the machine: successors start at most one per
// Interval and only while the load runs, and each is ready within
// StartTimeout of its start or is reported as a problem instead.
func wantRestartsInRun(t *testing.T, cfg rolling.Config, res *rolling.Result) {
	t.Helper()
	last := cfg.Load.Duration + cfg.StartTimeout
	switch n := len(res.Restarts); {
	case !slices.IsSorted(res.Restarts):
		t.Errorf("restarts at %v: want them in order", res.Restarts)
	case n > int(cfg.Load.Duration/cfg.Interval):
		t.Errorf("%d restarts, one every %v at most, in a run of %v: %v", n, cfg.Interval, cfg.Load.Duration, res.Restarts)
	case n > 0 && (res.Restarts[0] <= 0 || res.Restarts[n-1] > last):
		t.Errorf("restarts at %v: want them after the load began and before %v, its %v plus StartTimeout", res.Restarts, last, cfg.Load.Duration)
	}
}

func TestSignalModeReplacesWorkers(t *testing.T) {
	addr := freeAddr(t)
	var log strings.Builder
	cfg := rolling.Config{
		Command:      command(addr),
		ReadyLine:    "serving",
		Mode:         rolling.Signal,
		Interval:     200 * time.Millisecond,
		StartTimeout: 10 * time.Second,
		Load:         loadgen.Config{Addr: addr, Clients: 4, Duration: 1500 * time.Millisecond},
		Log:          &log,
	}
	res, err := rolling.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	// How many restarts fit in the run depends on the machine's load; that
	// they happen, and cleanly, does not.
	if len(res.Restarts) == 0 {
		t.Errorf("no worker was replaced\n%s", log.String())
	}
	if res.Stuck != 0 || len(res.Problems) != 0 {
		t.Errorf("servers that leave on SIGTERM were reported stuck or failing: %s\n%s", res, log.String())
	}
	wantRestartsInRun(t, cfg, res)
	// Each request, on a connection of its own, hashes to any socket of the
	// group, so many answered before the first replacement was ready come
	// from both first workers, and many after it from a replacement too. On
	// a busy machine the replacement may be ready only as the load ends:
	// judge only when enough requests fall on each side.
	if len(res.Restarts) > 0 {
		const enough = 50 // a socket of three misses all of them with odds of (2/3)^50
		before, after := 0, 0
		for _, s := range res.Load.Samples {
			switch {
			case s.Failure != "":
			case s.Start < res.Restarts[0]:
				before++
			default:
				after++
			}
		}
		if before >= enough && after >= enough && len(res.Load.PIDs()) < 3 {
			t.Errorf("%d answers before the first replacement was ready and %d after came from %d processes; want both first workers and a replacement", before, after, len(res.Load.PIDs()))
		}
	}
}

func TestHandoffModeReportsStuckPredecessors(t *testing.T) {
	addr := freeAddr(t)
	res, err := rolling.Run(context.Background(), rolling.Config{
		Command:   command(addr, "ROLLING_TEST_STUBBORN=1"),
		ReadyLine: "serving",
		Mode:      rolling.Handoff, // nobody tells the old ones to go, and they never do
		Workers:   1,
		Interval:  200 * time.Millisecond,
		Linger:    300 * time.Millisecond,
		Load:      loadgen.Config{Addr: addr, Clients: 2, Duration: 700 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stuck == 0 || res.Stuck != len(res.Restarts) {
		t.Fatalf("every predecessor stays, so stuck (%d) should equal restarts (%d)", res.Stuck, len(res.Restarts))
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := rolling.Run(context.Background(), rolling.Config{ReadyLine: "x", Load: loadgen.Config{Duration: time.Second}}); err == nil {
		t.Error("no Command accepted")
	}
	if _, err := rolling.Run(context.Background(), rolling.Config{Command: command("127.0.0.1:1"), ReadyLine: "x"}); err == nil {
		t.Error("no Load.Duration accepted")
	}
}

func TestCrashModeKillsAndReplaces(t *testing.T) {
	addr := freeAddr(t)
	res, err := rolling.Run(context.Background(), rolling.Config{
		Command:   command(addr),
		ReadyLine: "serving",
		Mode:      rolling.Crash,
		Workers:   3,
		Interval:  200 * time.Millisecond,
		Load:      loadgen.Config{Addr: addr, Clients: 4, Duration: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if len(res.Restarts) == 0 || res.Stuck != 0 || len(res.Problems) != 0 {
		t.Fatalf("want clean replacements of killed workers: %s", res)
	}
}

// TestWarmupIsNotMeasured checks that the warm-up load reaches the server
// and is left out of the result. The load goes to a server in this process,
// which counts what it answers; the workers only have to start.
func TestWarmupIsNotMeasured(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
	}))
	defer srv.Close()
	res, err := rolling.Run(context.Background(), rolling.Config{
		Command:   command(freeAddr(t)),
		ReadyLine: "serving",
		Mode:      rolling.Signal,
		Interval:  time.Hour, // no restart: only the load matters here
		Warmup:    300 * time.Millisecond,
		Load:      loadgen.Config{Addr: srv.Listener.Addr().String(), Clients: 2, Duration: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // waits for the handlers, so served is final
	if res.Load.Requests() == 0 || res.Load.Failed() != 0 {
		t.Fatalf("the measured load: %s", res.Load)
	}
	if warm := served.Load() - int64(res.Load.Requests()); warm <= 0 {
		t.Errorf("the server answered %d requests and the result holds %d: the warm-up sent none, or was counted", served.Load(), res.Load.Requests())
	}
}

// TestExternalLoad checks a run whose load the caller makes: it is called
// once with the run's length, while workers are replaced, and what it
// returns, result and error, comes back from Run.
func TestExternalLoad(t *testing.T) {
	addr := freeAddr(t)
	const d = 1200 * time.Millisecond
	type counts struct{ ok, failed int }
	calls := 0
	cfg := rolling.Config{
		Command:      command(addr),
		ReadyLine:    "serving",
		Mode:         rolling.Signal,
		Interval:     200 * time.Millisecond,
		StartTimeout: 10 * time.Second,
		Load:         loadgen.Config{Duration: d},
		External: func(ctx context.Context, got time.Duration) (any, error) {
			calls++
			if got != d {
				t.Errorf("External got %v, want the run's length %v", got, d)
			}
			var c counts
			client := &http.Client{Timeout: time.Second}
			for end := time.Now().Add(got); time.Now().Before(end) && ctx.Err() == nil; {
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					c.failed++
					continue
				}
				resp.Body.Close()
				c.ok++
			}
			return c, nil
		},
	}
	res, err := rolling.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	c, ok := res.External.(counts)
	if calls != 1 || !ok || c.ok == 0 || res.Load != nil {
		t.Fatalf("External called %d times, result %#v, Load %v: want one call, its result, and no loadgen run", calls, res.External, res.Load)
	}
	if len(res.Restarts) == 0 || res.Began.IsZero() {
		t.Errorf("restarts at %v from %v: want some, from the external load's beginning", res.Restarts, res.Began)
	}
	wantRestartsInRun(t, cfg, res)

	errLoad := errors.New("the load tool failed")
	_, err = rolling.Run(context.Background(), rolling.Config{
		Command:   command(freeAddr(t)),
		ReadyLine: "serving",
		Load:      loadgen.Config{Duration: time.Second},
		External:  func(context.Context, time.Duration) (any, error) { return nil, errLoad },
	})
	if !errors.Is(err, errLoad) {
		t.Errorf("Run returned %v, want the external load's error", err)
	}
}
