// Package rollingtest holds what the rolling-restart tests of the server
// commands share: a port in the test's namespace, the standard run, and the
// checks every lossless run and every control must pass. A test builds its
// server with servercmdtest.Binary before nstest.Isolate, then, in the
// namespace:
//
//	addr := rollingtest.Addr(t)
//	res := rollingtest.Run(t, rolling.Config{
//		Command: rolling.Server(bin, addr, t.TempDir()),
//		Load:    loadgen.Config{Addr: addr, Clients: 64, Duration: 20 * time.Second},
//	})
//	rollingtest.Check(t, res, 60)
package rollingtest

import (
	"net"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// Addr returns a loopback address for the workers, in the test's network
// namespace, where nobody else can take the port between this and their
// binds. It sets tcp_migrate_req to 0 (the default of a new namespace,
// said here since migration would hide a socket that really left the
// group).
func Addr(t *testing.T) string {
	t.Helper()
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Run runs cfg, the standard run if cfg leaves it so: two workers, one
// replaced every 250ms, each logging servercmdtest.ReadyLine once it serves.
// It fails the test if the run cannot be made, logs what the run saw, and,
// if the test fails, the servers' log at its end.
func Run(t *testing.T, cfg rolling.Config) *rolling.Result {
	t.Helper()
	if cfg.ReadyLine == "" {
		cfg.ReadyLine = servercmdtest.ReadyLine
	}
	logs := new(servercmdtest.Log)
	if cfg.Log == nil {
		cfg.Log = logs
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("servers' log:\n%s", logs)
			}
		})
	}
	res, err := rolling.Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("%v\nservers' log:\n%s", err, logs)
	}
	if res.Load != nil {
		t.Logf("%v: %v; %d processes served", cfg.Mode, res, len(res.Load.PIDs()))
	} else {
		t.Logf("%v: %v", cfg.Mode, res)
	}
	return res
}

// Check checks what every lossless run must show: at least minRestarts
// restarts, no predecessor still running after the load, no server that
// failed, and, where loadgen made the load, requests answered, none failed,
// and every generation ready a second before the last request ended among
// those that answered (the load really crossed each restart; the last few
// may have become ready as the load ended). It is for the standard run, of
// two workers.
func Check(t *testing.T, res *rolling.Result, minRestarts int) {
	t.Helper()
	if n := len(res.Restarts); n < minRestarts {
		t.Errorf("only %d restarts, want at least %d (one every 250ms, less start-up time)", n, minRestarts)
	}
	if res.Stuck != 0 {
		t.Errorf("%d predecessors were still running 5s after the load ended", res.Stuck)
	}
	for _, p := range res.Problems {
		t.Errorf("problem: %s", p)
	}
	if res.Load == nil {
		return
	}
	if n := res.Load.Failed(); n != 0 || res.Load.Requests() == 0 {
		t.Errorf("%d of %d requests failed across %d restarts: %v", n, res.Load.Requests(), len(res.Restarts), res.Load.Failures)
	}
	// The last request's end, not Load.Elapsed, which also counts the
	// clients' closing: 1.8s after the last request, in one run.
	var end time.Duration
	for _, s := range res.Load.Samples {
		end = max(end, s.Start+s.Latency)
	}
	lived := 2 // the first two workers
	for _, at := range res.Restarts {
		if at < end-time.Second {
			lived++
		}
	}
	if got := len(res.Load.PIDs()); got < lived {
		t.Errorf("responses came from %d processes, want every one ready a second before the end (%d)", got, lived)
	}
}

// CheckLoss checks what a control run must show: at least minRestarts
// restarts and, where loadgen made the load, requests that failed. A
// control that lost nothing would mean the harness cannot see what the
// lossless runs prevent.
func CheckLoss(t *testing.T, res *rolling.Result, minRestarts int) {
	t.Helper()
	if n := len(res.Restarts); n < minRestarts {
		t.Errorf("only %d restarts, want at least %d", n, minRestarts)
	}
	if res.Load != nil && res.Load.Failed() == 0 {
		t.Errorf("no request failed in %d across %d restarts; the harness does not see lost requests", res.Load.Requests(), len(res.Restarts))
	}
}
