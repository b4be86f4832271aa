package main

import (
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
	"github.com/b93f8b21/reuseport/internal/test/rolling/rollingtest"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// envBinary passes the server binary built outside the namespace to the
// test that runs inside it.
const envBinary = "HTTPSERVER_TEST_BINARY"

// TestRollingHandoffLosesNothing is the promise under stress: two
// workers on one port, 64 clients each opening a new connection per request,
// and a successor started every 250ms, workers in turn, each taking over its
// predecessor's socket through -handoff. No request may fail.
func TestRollingHandoffLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20s stress run; not in -short")
	}
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	addr := rollingtest.Addr(t)
	res := rollingtest.Run(t, rolling.Config{
		Command: rolling.Server(bin, addr, t.TempDir()),
		Mode:    rolling.Handoff,
		Load:    loadgen.Config{Addr: addr, Clients: 64, Duration: 20 * time.Second},
	})
	rollingtest.Check(t, res, 60)
	if max := res.Load.Max(); max >= time.Second {
		t.Errorf("the slowest request took %v; a handoff must not stall clients for a second", max)
	}
}

// TestRollingSignalLosesRequests is the control for the test above: the
// same load and restarts, but each predecessor gets SIGTERM and stops with
// plain http.Server.Shutdown, closing its socket. If this saw no failure,
// the harness could not see what -handoff prevents.
func TestRollingSignalLosesRequests(t *testing.T) {
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	addr := rollingtest.Addr(t)
	res := rollingtest.Run(t, rolling.Config{
		Command: rolling.Server(bin, addr, "", "-shutdown", shutdownStdlib),
		Mode:    rolling.Signal,
		Load:    loadgen.Config{Addr: addr, Clients: 64, Duration: 5 * time.Second},
	})
	rollingtest.CheckLoss(t, res, 10)
}

// buildServer makes the server binary once, outside the namespace (where
// the module cache and the network are), and without -race. Serving
// through the race-instrumented test binary instead, the handoff run
// managed 1.1k req/s, not 3.7k, with its slowest request at 820ms against
// 220ms: it measured the race detector, close to the latency bound, not
// the handoff. The load client still runs in this, possibly
// race-instrumented, test binary.
func buildServer(t *testing.T) string {
	t.Helper()
	return servercmdtest.Binary(t, envBinary, "httpserver", ".")
}
