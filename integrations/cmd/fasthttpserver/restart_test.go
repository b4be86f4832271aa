package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/internal/loadgen"
	"github.com/b93f8b21/reuseport/internal/nstest"
	"github.com/b93f8b21/reuseport/internal/rolling"
)

// envBinary passes the server binary built outside the namespace to the
// test that runs inside it.
const envBinary = "FASTHTTPSERVER_TEST_BINARY"

// The rolling runs: two workers, a successor every 250ms, workers in turn.
const (
	stressRun  = 20 * time.Second
	controlRun = 10 * time.Second
)

// Each of the three tests below is the promise under stress, with a
// different client: 64 clients sending POSTs, and each predecessor taking
// the socket's handoff, draining through fasthttpdrain, and exiting. No
// request may fail.

// TestRollingKeepAliveFasthttpClient loads the workers with fasthttp's own
// client: one HostClient, whose pool keeps connections alive between
// requests and reuses them in turn, and which retries nothing.
func TestRollingKeepAliveFasthttpClient(t *testing.T) {
	lossless(t, fasthttpLoad)
}

// TestRollingKeepAliveRawClient loads the workers with loadgen's raw
// HTTP/1.1 client: each client keeps one connection and sends its next
// request on it as soon as the last is answered.
func TestRollingKeepAliveRawClient(t *testing.T) {
	lossless(t, rawKeepAliveLoad)
}

// TestRollingNewConnPerRequest loads the workers with a new connection per
// request (HTTP/1.0).
func TestRollingNewConnPerRequest(t *testing.T) {
	lossless(t, perRequestLoad)
}

// TestRollingNativeShutdownLosesFasthttpClient is the control for the
// keep-alive tests: the same clients and handoffs, but each predecessor
// stops with fasthttp's own ShutdownWithContext, which closes connections
// idle in keep-alive under clients about to reuse them. If no request failed, the harness
// could not see what fasthttpdrain prevents.
func TestRollingNativeShutdownLosesFasthttpClient(t *testing.T) {
	lossy(t, rolling.Handoff, fasthttpLoad, "-shutdown", "native")
}

// TestRollingNativeShutdownLosesRawClient is the control with loadgen's raw
// keep-alive client.
func TestRollingNativeShutdownLosesRawClient(t *testing.T) {
	lossy(t, rolling.Handoff, rawKeepAliveLoad, "-shutdown", "native")
}

// TestRollingSignalLoses is the control for TestRollingNewConnPerRequest:
// the same server and drain, but no handoff. Each predecessor gets SIGTERM
// once its successor (on a socket of its own) serves, and closing its
// socket resets the connections queued on it, as tcp_migrate_req=0 leaves
// them.
func TestRollingSignalLoses(t *testing.T) {
	lossy(t, rolling.Signal, perRequestLoad)
}

// A load makes the clients of a run against addr; done, if not nil, is
// called once the run is over.
type load func(addr string) (cfg loadgen.Config, done func())

func perRequestLoad(addr string) (loadgen.Config, func()) {
	return loadgen.Config{Addr: addr, Method: "POST", Body: "ping"}, nil
}

func rawKeepAliveLoad(addr string) (loadgen.Config, func()) {
	return loadgen.Config{Addr: addr, KeepAlive: true, Method: "POST", Body: "ping"}, nil
}

// fasthttpLoad shares one fasthttp.HostClient among the run's clients, as
// a program (or a proxy) shares its pool among its goroutines. It retries
// nothing: MaxIdemponentCallAttempts 1 ends Do after its first attempt,
// and RetryIfErr would refuse a second one anyway (a POST is not retried
// by default either).
func fasthttpLoad(addr string) (loadgen.Config, func()) {
	hc := &fasthttp.HostClient{
		Addr:                      addr,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (resetTimeout, retry bool) { return false, false },
	}
	uri := "http://" + addr + "/"
	return loadgen.Config{NewClient: func() (loadgen.Client, error) {
		return &fasthttpClient{hc: hc, uri: uri}, nil
	}}, hc.CloseIdleConnections
}

// fasthttpClient is one of a run's clients, sending POSTs through a shared
// HostClient.
type fasthttpClient struct {
	hc  *fasthttp.HostClient
	uri string
}

func (c *fasthttpClient) Do(deadline time.Time) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetBodyString("ping")
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
		return 0, loadgen.Stage("do", err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return 0, loadgen.Stage("response", fmt.Errorf("status %d", resp.StatusCode()))
	}
	return loadgen.ParsePID(resp.Body()), nil
}

func (c *fasthttpClient) Close() error { return nil }

// lossless runs a stress run of handoffs under l and asserts that no
// request failed.
func lossless(t *testing.T, l load) {
	if testing.Short() {
		t.Skip("a 20s stress run; not in -short")
	}
	buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	// 0 is the default in a new namespace; say so, since migration would
	// hide a socket that really left the group.
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, log := rollingRun(t, rolling.Handoff, stressRun, l, func(w int) []string {
		return []string{"-handoff", filepath.Join(dir, fmt.Sprintf("w%d.sock", w+1))}
	})
	if n := res.Load.Failed(); n != 0 {
		t.Errorf("%d of %d requests failed across %d restarts: %v", n, res.Load.Requests(), len(res.Restarts), res.Load.Failures)
	}
	if res.Stuck != 0 {
		t.Errorf("%d predecessors were still running 5s after the load ended", res.Stuck)
	}
	for _, p := range res.Problems {
		t.Errorf("problem: %s", p)
	}
	if n := len(res.Restarts); n < 60 {
		t.Errorf("only %d restarts in %v, want at least 60 (one every 250ms, less start-up time)", n, stressRun)
	}
	// Every generation that served for a while answered requests: the
	// load really crossed each handoff. The last few may have become
	// ready just as the load ended.
	lived := 2 // the first two workers
	for _, at := range res.Restarts {
		if at < res.Load.Elapsed-time.Second {
			lived++
		}
	}
	if got := len(res.Load.PIDs()); got < lived {
		t.Errorf("responses came from %d processes, want every one ready a second before the end (%d)", got, lived)
	}
	if t.Failed() {
		t.Logf("servers' log:\n%s", log)
	}
}

// lossy runs a control: it must see requests fail.
func lossy(t *testing.T, mode rolling.Mode, l load, args ...string) {
	buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, _ := rollingRun(t, mode, controlRun, l, func(w int) []string {
		if mode == rolling.Signal {
			return args
		}
		return append([]string{"-handoff", filepath.Join(dir, fmt.Sprintf("w%d.sock", w+1))}, args...)
	})
	if res.Load.Failed() == 0 {
		t.Errorf("no request failed in %d across %d restarts; the harness does not see lost requests", res.Load.Requests(), len(res.Restarts))
	}
	if n := len(res.Restarts); n < 20 {
		t.Errorf("only %d restarts in %v", n, controlRun)
	}
}

// rollingRun runs the rolling-restart load against two workers on a port
// of the test's namespace, where nobody else can bind it.
func rollingRun(t *testing.T, mode rolling.Mode, d time.Duration, l load, args func(worker int) []string) (*rolling.Result, *lockedBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg, done := l(addr)
	if done != nil {
		defer done()
	}
	cfg.Clients, cfg.Duration = 64, d
	bin := os.Getenv(envBinary)
	log := new(lockedBuffer)
	res, err := rolling.Run(t.Context(), rolling.Config{
		Command: func(w, _ int) *exec.Cmd {
			return exec.Command(bin, append([]string{"-addr", addr, "-shutdown-timeout", "5s"}, args(w)...)...)
		},
		ReadyLine: "listening on",
		Workers:   2,
		Interval:  250 * time.Millisecond,
		Mode:      mode,
		Load:      cfg,
		Log:       log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: %v; %d processes served", mode, res, len(res.Load.PIDs()))
	return res, log
}

// built is the server binary, made once for every test of the run.
var built struct {
	once sync.Once
	dir  string // removed by TestMain
	bin  string
	err  error
}

// buildServer makes the server binary, once, outside the namespace (where
// the module cache is), and without -race: the servers are what is
// measured, not the race detector. The load clients still run in this,
// possibly race-instrumented, test binary. If FASTHTTPSERVER_TEST_BINARY
// is set already, that binary is used instead (one built with -race, say).
func buildServer(t *testing.T) {
	t.Helper()
	if nstest.InChild() {
		return
	}
	built.once.Do(func() {
		if built.bin = os.Getenv(envBinary); built.bin != "" {
			return
		}
		if built.dir, built.err = os.MkdirTemp("", "fasthttpserver-test"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "fasthttpserver")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	t.Setenv(envBinary, built.bin)
}
