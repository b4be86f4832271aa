package main

import (
	"context"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/loadgen"
	"github.com/b93f8b21/reuseport/internal/nginx"
	"github.com/b93f8b21/reuseport/internal/nstest"
	"github.com/b93f8b21/reuseport/internal/rolling"
	"github.com/b93f8b21/reuseport/internal/tooltest"
	"github.com/b93f8b21/reuseport/internal/wrk"
)

// These tests restart the example server behind a reverse proxy that keeps
// connections to it alive, as most servers are deployed. A keep-alive
// connection is where a plain graceful shutdown loses requests: the server
// closes a connection it sees idle while the proxy is already sending the
// next request on it, and the proxy, which does not retry a POST, answers
// 502. The drain that -handoff uses keeps idle connections open, answers
// the next request on each with Connection: close, and closes a
// connection only after it has been idle for a while.

// proxyClients is the clients' keep-alive connections to the proxy, and
// proxyBody what each of their POSTs carries.
const (
	proxyClients = 64
	proxyBody    = "a small form, as a browser or an API client posts it\n"
)

// TestNginxKeepAliveHandoffLosesNothing: nginx in front of two workers,
// keeping up to 64 connections to them alive, HTTP/1.1, no retry on
// another connection; wrk posting over 64 keep-alive connections to nginx;
// one worker replaced every 250ms through -handoff. No request may fail.
func TestNginxKeepAliveHandoffLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20s stress run; not in -short")
	}
	tooltest.Need(t, nginx.Available, wrk.Available)
	buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	res, w, logs := nginxRun(t, shutdownDrain, 20*time.Second)
	if w.Requests == 0 {
		t.Errorf("wrk completed no request")
	}
	if n := w.Errors.Status; n != 0 {
		t.Errorf("%d of %d requests were answered other than 2xx/3xx (nginx's 502: a request lost on a kept connection) across %d restarts", n, w.Requests, len(res.Restarts))
	}
	if n := w.Errors.Socket(); n != 0 {
		t.Errorf("wrk saw %d socket errors (%v) across %d restarts", n, w.Errors, len(res.Restarts))
	}
	checkRolling(t, res, 60, logs)
}

// TestNginxKeepAliveStdlibLosesRequests is the control for the test above:
// the same, but each predecessor stops with plain http.Server.Shutdown,
// which closes idle connections at once. If nginx answered no 502, the
// test could not see what the drain prevents.
func TestNginxKeepAliveStdlibLosesRequests(t *testing.T) {
	tooltest.Need(t, nginx.Available, wrk.Available)
	buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	res, w, _ := nginxRun(t, shutdownStdlib, 5*time.Second)
	if w.Errors.Status == 0 {
		t.Errorf("nginx answered no request with 502 in %d across %d plain restarts; the test does not see requests lost on kept connections", w.Requests, len(res.Restarts))
	}
	if len(res.Restarts) < 10 {
		t.Errorf("only %d restarts in 5s", len(res.Restarts))
	}
}

// TestReverseProxyKeepAliveHandoffLosesNothing is the nginx test with Go's
// own reverse proxy in front: httputil.ReverseProxy in this process,
// keeping connections to the workers alive, and 64 clients posting to it
// over keep-alive connections. A 502 from the proxy is a failed request.
func TestReverseProxyKeepAliveHandoffLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20s stress run; not in -short")
	}
	buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	res, logs := reverseProxyRun(t, shutdownDrain, 20*time.Second)
	if n := res.Load.Failed(); n != 0 || res.Load.Requests() == 0 {
		t.Errorf("%d of %d requests failed across %d restarts: %v", n, res.Load.Requests(), len(res.Restarts), res.Load.Failures)
	}
	// The proxy passes the pid each answer names on.
	checkServedByAll(t, res)
	checkRolling(t, res, 60, logs)
}

// TestReverseProxyKeepAliveStdlibLosesRequests is the control for the test
// above, with plain http.Server.Shutdown.
func TestReverseProxyKeepAliveStdlibLosesRequests(t *testing.T) {
	buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	res, _ := reverseProxyRun(t, shutdownStdlib, 10*time.Second)
	if res.Load.Failed() == 0 {
		t.Errorf("no request failed in %d across %d plain restarts behind httputil.ReverseProxy; the test does not see requests lost on kept connections", res.Load.Requests(), len(res.Restarts))
	}
	if len(res.Restarts) < 20 {
		t.Errorf("only %d restarts in 10s", len(res.Restarts))
	}
}

// nginxRun starts nginx as a keep-alive proxy in front of the port of the
// workers, and restarts them through -handoff, stopping each predecessor
// as shutdown says, while wrk posts through nginx for d.
func nginxRun(t *testing.T, shutdown string, d time.Duration) (*rolling.Result, wrk.Result, *lockedBuffer) {
	t.Helper()
	addr := proxiedAddr(t)
	// One worker: one pool of kept connections, as in the measurements
	// this test repeats.
	ngx, err := nginx.Start(t.Context(), nginx.Config{Workers: 1, Upstream: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ngx.Stop(); err != nil {
			t.Errorf("stopping nginx: %v", err)
		}
	}()
	wc := wrk.Config{URL: "http://" + ngx.Addr + "/", Threads: 2, Conns: proxyClients, Method: http.MethodPost, Body: proxyBody}
	wc.Duration = d
	res, logs := proxiedRun(t, addr, shutdown, loadgen.Config{Duration: d}, func(ctx context.Context, d time.Duration) (any, error) {
		c := wc
		c.Duration = d
		return wrk.Run(ctx, c)
	})
	w := res.External.(wrk.Result)
	t.Logf("%s: restarts=%d stuck=%d wrk: %v\n%s\n%s", shutdown, len(res.Restarts), res.Stuck, w, wc.Command(), w.Output)
	return res, w, logs
}

// reverseProxyRun is nginxRun with httputil.ReverseProxy in this process
// in front of the workers, and loadgen's keep-alive clients posting to it.
func reverseProxyRun(t *testing.T, shutdown string, d time.Duration) (*rolling.Result, *lockedBuffer) {
	t.Helper()
	addr := proxiedAddr(t)
	target := &url.URL{Scheme: "http", Host: addr}
	errLog := new(lockedBuffer)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		// Room for an idle connection per client, and more: the proxy
		// must never close one for want of space, or the test would
		// measure that instead of the restarts.
		Transport: &http.Transport{MaxIdleConns: 2 * proxyClients, MaxIdleConnsPerHost: 2 * proxyClients, IdleConnTimeout: time.Minute},
		ErrorLog:  log.New(logWriter{errLog}, "reverse proxy: ", 0),
	}
	proxy := httptest.NewServer(rp)
	defer proxy.Close()
	load := loadgen.Config{
		Addr: proxy.Listener.Addr().String(), Clients: proxyClients, Duration: d,
		KeepAlive: true, Method: http.MethodPost, Body: proxyBody,
	}
	res, logs := proxiedRun(t, addr, shutdown, load, nil)
	t.Logf("%s: %v; %d processes served", shutdown, res, len(res.Load.PIDs()))
	logs.WriteString(errLog.String())
	return res, logs
}

// proxiedAddr is the workers' address in the test's namespace, where
// tcp_migrate_req is 0: migration would hide a socket that really left
// the group.
func proxiedAddr(t *testing.T) string {
	t.Helper()
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	ln, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proxiedRun replaces one of two workers on addr every 250ms through
// -handoff, under load, or under external if it is not nil.
func proxiedRun(t *testing.T, addr, shutdown string, load loadgen.Config, external func(context.Context, time.Duration) (any, error)) (*rolling.Result, *lockedBuffer) {
	t.Helper()
	logs := new(lockedBuffer)
	res, err := rolling.Run(t.Context(), rolling.Config{
		Command:   rolling.ExampleServer(os.Getenv(envBinary), addr, shutdown, t.TempDir()),
		ReadyLine: rolling.ExampleReady,
		Workers:   2,
		Interval:  250 * time.Millisecond,
		Mode:      rolling.Handoff,
		Load:      load,
		External:  external,
		Log:       logWriter{logs},
	})
	if err != nil {
		t.Fatalf("%v\nservers' log:\n%s", err, logs)
	}
	return res, logs
}

// checkRolling checks what every lossless run must also show: at least
// min restarts, every predecessor gone, no server that failed.
func checkRolling(t *testing.T, res *rolling.Result, min int, logs *lockedBuffer) {
	t.Helper()
	if n := len(res.Restarts); n < min {
		t.Errorf("only %d restarts, want at least %d (one every 250ms, less start-up time)", n, min)
	}
	if res.Stuck != 0 {
		t.Errorf("%d predecessors were still running 5s after the load ended", res.Stuck)
	}
	for _, p := range res.Problems {
		t.Errorf("problem: %s", p)
	}
	if t.Failed() {
		t.Logf("servers' log:\n%s", logs)
	}
}
