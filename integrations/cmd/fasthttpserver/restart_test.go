package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
	"github.com/b93f8b21/reuseport/internal/test/rolling/rollingtest"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
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
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	rollingtest.Check(t, rollingRun(t, bin, rolling.Handoff, stressRun, l), 60)
}

// lossy runs a control: it must see requests fail.
func lossy(t *testing.T, mode rolling.Mode, l load, args ...string) {
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	rollingtest.CheckLoss(t, rollingRun(t, bin, mode, controlRun, l, args...), 20)
}

// rollingRun runs the rolling-restart load of 64 clients made by l
// against two workers started with args, each taking its predecessor's
// socket unless mode is rolling.Signal.
func rollingRun(t *testing.T, bin string, mode rolling.Mode, d time.Duration, l load, args ...string) *rolling.Result {
	t.Helper()
	addr := rollingtest.Addr(t)
	cfg, done := l(addr)
	if done != nil {
		defer done()
	}
	cfg.Clients, cfg.Duration = 64, d
	handoffDir := t.TempDir()
	if mode == rolling.Signal {
		handoffDir = ""
	}
	return rollingtest.Run(t, rolling.Config{
		Command: rolling.Server(bin, addr, handoffDir, args...),
		Mode:    mode,
		Load:    cfg,
	})
}

// buildServer makes the server binary, once, outside the namespace (where
// the module cache is), and without -race: the servers are what is
// measured, not the race detector. The load clients still run in this,
// possibly race-instrumented, test binary. If FASTHTTPSERVER_TEST_BINARY
// is set already, that binary is used instead (one built with -race, say).
func buildServer(t *testing.T) string {
	t.Helper()
	return servercmdtest.Binary(t, envBinary, "fasthttpserver", ".")
}
