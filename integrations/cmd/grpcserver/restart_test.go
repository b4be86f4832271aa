package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/loadgen"
	"github.com/b93f8b21/reuseport/internal/nstest"
	"github.com/b93f8b21/reuseport/internal/rolling"
)

// envBinary passes the server binary built outside the namespace to the
// test that runs inside it.
const envBinary = "GRPCSERVER_TEST_BINARY"

// The two kinds of gRPC client a restart must not hurt.
const (
	perRPC     = false // a new ClientConn for every RPC: dial, Check, close
	persistent = true  // one ClientConn per client for the whole run
)

// TestRollingHandoffPerRPC is the promise for clients that dial for each
// RPC: two workers on one port, a successor every 250ms, workers in turn,
// each taking over its predecessor's socket through -handoff, 20s of
// health checks on fresh ClientConns. No RPC may fail.
func TestRollingHandoffPerRPC(t *testing.T) {
	testRollingHandoff(t, perRPC)
}

// TestRollingHandoffPersistent is the same for clients that keep one
// ClientConn: each restart's GOAWAY must move them to the successor
// without failing an RPC.
func TestRollingHandoffPersistent(t *testing.T) {
	testRollingHandoff(t, persistent)
}

func testRollingHandoff(t *testing.T, keep bool) {
	if testing.Short() {
		t.Skip("a 20s stress run; not in -short")
	}
	buildServer(t)
	if outsideRace(t) {
		return
	}
	if nstest.Isolate(t) {
		return
	}
	// 0 is the default in a new namespace; say so, since migration would
	// hide a socket that really left the group.
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, log := rollingRun(t, rolling.Handoff, 20*time.Second, keep, func(w int) []string {
		return []string{"-handoff", filepath.Join(dir, fmt.Sprintf("w%d.sock", w+1))}
	})

	if n := res.Load.Failed(); n != 0 {
		t.Errorf("%d of %d RPCs failed across %d restarts: %v", n, res.Load.Requests(), len(res.Restarts), res.Load.Failures)
	}
	if res.Stuck != 0 {
		t.Errorf("%d predecessors were still running 5s after the load ended", res.Stuck)
	}
	for _, p := range res.Problems {
		t.Errorf("problem: %s", p)
	}
	if n := len(res.Restarts); n < 60 {
		t.Errorf("only %d restarts in 20s, want at least 60 (one every 250ms, less start-up time)", n)
	}
	// The load really crossed the handoffs: every generation ready a
	// second before the end answered RPCs. A persistent client moves
	// only when its process leaves, so it must have been answered by as
	// many processes; the last few may have become ready as the load
	// ended.
	lived := 2 // the first two workers
	for _, at := range res.Restarts {
		if at < res.Load.Elapsed-time.Second {
			lived++
		}
	}
	if got := len(res.Load.PIDs()); got < lived {
		t.Errorf("RPCs were answered by %d processes, want every one ready a second before the end (%d)", got, lived)
	}
	if t.Failed() {
		t.Logf("servers' log:\n%s", log)
	}
}

// TestRollingSignalGracefulLosesRPCs is the control for per-RPC clients:
// the same restarts, but each successor binds a fresh socket and the
// predecessor gets SIGTERM and stops with GracefulStop, closing its
// socket and resetting the connections queued on it. If no RPC failed,
// the harness could not see what -handoff prevents.
func TestRollingSignalGracefulLosesRPCs(t *testing.T) {
	buildServer(t)
	if outsideRace(t) {
		return
	}
	if nstest.Isolate(t) {
		return
	}
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	res, _ := rollingRun(t, rolling.Signal, 5*time.Second, perRPC, func(int) []string {
		return []string{"-shutdown", shutdownGraceful}
	})
	if res.Load.Failed() == 0 {
		t.Errorf("no RPC failed in %d across %d plain restarts; the harness does not see lost connections", res.Load.Requests(), len(res.Restarts))
	}
	if len(res.Restarts) < 10 {
		t.Errorf("only %d restarts in 5s", len(res.Restarts))
	}
}

// TestRollingHandoffGracefulLosesRPCs is the control for the barrier:
// handoff restarts as in TestRollingHandoffPerRPC, but each predecessor
// calls GracefulStop as soon as its successor serves, without waiting for
// grpc-go to take up the connections it has accepted. Those it had not
// are closed unanswered, and their clients fail although the listening
// socket never closed. It runs 10s: on a loaded 2-core machine, 5s runs
// saw as few as 2 failures.
func TestRollingHandoffGracefulLosesRPCs(t *testing.T) {
	buildServer(t)
	if outsideRace(t) {
		return
	}
	if nstest.Isolate(t) {
		return
	}
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, _ := rollingRun(t, rolling.Handoff, 10*time.Second, perRPC, func(w int) []string {
		return []string{"-shutdown", shutdownGraceful, "-handoff", filepath.Join(dir, fmt.Sprintf("w%d.sock", w+1))}
	})
	if res.Load.Failed() == 0 {
		t.Errorf("no RPC failed in %d across %d restarts with GracefulStop and no barrier; the harness does not see the connections it drops", res.Load.Requests(), len(res.Restarts))
	}
	if len(res.Restarts) < 20 {
		t.Errorf("only %d restarts in 10s", len(res.Restarts))
	}
}

// TestRollingHandoffStopLosesRPCs is the control for persistent clients:
// handoff restarts, but each predecessor stops with Stop, which closes
// its connections under the RPCs in progress. If no RPC failed, the
// harness could not see what the drain's GOAWAY prevents.
func TestRollingHandoffStopLosesRPCs(t *testing.T) {
	buildServer(t)
	if outsideRace(t) {
		return
	}
	if nstest.Isolate(t) {
		return
	}
	dir := t.TempDir()
	res, _ := rollingRun(t, rolling.Handoff, 5*time.Second, persistent, func(w int) []string {
		return []string{"-shutdown", shutdownStop, "-handoff", filepath.Join(dir, fmt.Sprintf("w%d.sock", w+1))}
	})
	if res.Load.Failed() == 0 {
		t.Errorf("no RPC failed in %d across %d restarts with Stop; the harness does not see RPCs cut off", res.Load.Requests(), len(res.Restarts))
	}
	if len(res.Restarts) < 10 {
		t.Errorf("only %d restarts in 5s", len(res.Restarts))
	}
}

// rollingRun runs rolling restarts of two workers under the load of 64
// gRPC clients, on a port of the test's namespace, where nobody else can
// bind it.
func rollingRun(t *testing.T, mode rolling.Mode, d time.Duration, keep bool, args func(worker int) []string) (*rolling.Result, *lockedBuffer) {
	t.Helper()
	ln, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

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
		Load: loadgen.Config{
			Clients:   64,
			Duration:  d,
			Timeout:   5 * time.Second,
			NewClient: func() (loadgen.Client, error) { return &grpcClient{addr: addr, keep: keep}, nil },
		},
		Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	kind := "new ClientConn per RPC"
	if keep {
		kind = "persistent ClientConns"
	}
	t.Logf("%v, %s: %v; %d processes served", mode, kind, res, len(res.Load.PIDs()))
	return res, log
}

// grpcClient is a load client that sends grpc.health.v1.Health/Check,
// failing fast: no waiting for a connection to become ready, no retries
// but grpc-go's transparent retry of an RPC the server never saw.
type grpcClient struct {
	addr string
	keep bool // keep one ClientConn; else a new one for every RPC
	cc   *grpc.ClientConn
}

func (c *grpcClient) Do(deadline time.Time) (pid int, err error) {
	if c.cc == nil {
		c.cc, err = grpc.NewClient("passthrough:///"+c.addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDisableRetry())
		if err != nil {
			return 0, loadgen.Stage("client", err)
		}
	}
	if !c.keep {
		defer c.Close()
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var header metadata.MD
	resp, err := healthpb.NewHealthClient(c.cc).Check(ctx, &healthpb.HealthCheckRequest{},
		grpc.WaitForReady(false), grpc.Header(&header))
	if err != nil {
		return 0, loadgen.Stage("rpc "+status.Code(err).String(), err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return 0, loadgen.Stage("rpc", fmt.Errorf("status %v", s))
	}
	if v := header.Get("pid"); len(v) == 1 {
		pid, _ = strconv.Atoi(v[0])
	}
	return pid, nil
}

func (c *grpcClient) Close() error {
	if c.cc == nil {
		return nil
	}
	err := c.cc.Close()
	c.cc = nil
	return err
}

// buildServer makes the server binary, outside the namespace (where the
// module cache is), and without -race, so that the load measures the
// restarts and not the race detector, and passes it to the test's
// namespace in the environment.
func buildServer(t *testing.T) {
	t.Helper()
	if nstest.InChild() || os.Getenv(envBinary) != "" {
		return // built by the process that started this one
	}
	t.Setenv(envBinary, build(t, "grpcserver", "build"))
}

var (
	buildDir  string // made by TestMain, removed when the tests end
	buildMu   sync.Mutex
	buildDone = make(map[string]string)
)

// build runs go with args ("build" or "test -c") in this package, without
// -race, once per test binary run, and returns the path of the binary.
func build(t *testing.T, name string, args ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := buildDone[name]; ok {
		return bin
	}
	bin := filepath.Join(buildDir, name)
	cmd := exec.Command("go", append(args, "-o", bin, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	buildDone[name] = bin
	return bin
}

func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "grpcserver-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

// lockedBuffer collects the servers' log while the harness writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
