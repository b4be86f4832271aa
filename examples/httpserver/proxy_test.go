package main

import (
	"context"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/nginx"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
	"github.com/b93f8b21/reuseport/internal/test/rolling/rollingtest"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
	"github.com/b93f8b21/reuseport/internal/test/tooltest"
	"github.com/b93f8b21/reuseport/internal/test/wrk"
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
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	res, w := nginxRun(t, bin, shutdownDrain, 20*time.Second)
	if w.Requests == 0 {
		t.Errorf("wrk completed no request")
	}
	if n := w.Errors.Status; n != 0 {
		t.Errorf("%d of %d requests were answered other than 2xx/3xx (nginx's 502: a request lost on a kept connection) across %d restarts", n, w.Requests, len(res.Restarts))
	}
	if n := w.Errors.Socket(); n != 0 {
		t.Errorf("wrk saw %d socket errors (%v) across %d restarts", n, w.Errors, len(res.Restarts))
	}
	rollingtest.Check(t, res, 60)
}

// TestNginxKeepAliveStdlibLosesRequests is the control for the test above:
// the same, but each predecessor stops with plain http.Server.Shutdown,
// which closes idle connections at once. If nginx answered no 502, the
// test could not see what the drain prevents.
func TestNginxKeepAliveStdlibLosesRequests(t *testing.T) {
	tooltest.Need(t, nginx.Available, wrk.Available)
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	res, w := nginxRun(t, bin, shutdownStdlib, 5*time.Second)
	if w.Errors.Status == 0 {
		t.Errorf("nginx answered no request with 502 in %d across %d plain restarts; the test does not see requests lost on kept connections", w.Requests, len(res.Restarts))
	}
	rollingtest.CheckLoss(t, res, 10)
}

// TestReverseProxyKeepAliveHandoffLosesNothing is the nginx test with Go's
// own reverse proxy in front: httputil.ReverseProxy in this process,
// keeping connections to the workers alive, and 64 clients posting to it
// over keep-alive connections. A 502 from the proxy is a failed request.
func TestReverseProxyKeepAliveHandoffLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20s stress run; not in -short")
	}
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	// The proxy passes on the pid each answer names, which Check needs.
	rollingtest.Check(t, reverseProxyRun(t, bin, shutdownDrain, 20*time.Second), 60)
}

// TestReverseProxyKeepAliveStdlibLosesRequests is the control for the test
// above, with plain http.Server.Shutdown.
func TestReverseProxyKeepAliveStdlibLosesRequests(t *testing.T) {
	bin := buildServer(t)
	if nstest.Isolate(t) {
		return
	}
	rollingtest.CheckLoss(t, reverseProxyRun(t, bin, shutdownStdlib, 10*time.Second), 20)
}

// nginxRun starts nginx as a keep-alive proxy in front of the port of the
// workers, and restarts them through -handoff, stopping each predecessor
// as shutdown says, while wrk posts through nginx for d.
func nginxRun(t *testing.T, bin, shutdown string, d time.Duration) (*rolling.Result, wrk.Result) {
	t.Helper()
	addr := rollingtest.Addr(t)
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
	res := rollingtest.Run(t, rolling.Config{
		Command: rolling.ExampleServer(bin, addr, shutdown, t.TempDir()),
		Mode:    rolling.Handoff,
		Load:    loadgen.Config{Duration: d},
		External: func(ctx context.Context, d time.Duration) (any, error) {
			c := wc
			c.Duration = d
			return wrk.Run(ctx, c)
		},
	})
	w := res.External.(wrk.Result)
	t.Logf("%s: wrk: %v\n%s\n%s", shutdown, w, wc.Command(), w.Output)
	return res, w
}

// reverseProxyRun is nginxRun with httputil.ReverseProxy in this process
// in front of the workers, and loadgen's keep-alive clients posting to it.
func reverseProxyRun(t *testing.T, bin, shutdown string, d time.Duration) *rolling.Result {
	t.Helper()
	addr := rollingtest.Addr(t)
	target := &url.URL{Scheme: "http", Host: addr}
	errLog := new(servercmdtest.Log)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		// Room for an idle connection per client, and more: the proxy
		// must never close one for want of space, or the test would
		// measure that instead of the restarts.
		Transport: &http.Transport{MaxIdleConns: 2 * proxyClients, MaxIdleConnsPerHost: 2 * proxyClients, IdleConnTimeout: time.Minute},
		ErrorLog:  log.New(errLog, "reverse proxy: ", 0),
	}
	proxy := httptest.NewServer(rp)
	defer proxy.Close()
	load := loadgen.Config{
		Addr: proxy.Listener.Addr().String(), Clients: proxyClients, Duration: d,
		KeepAlive: true, Method: http.MethodPost, Body: proxyBody,
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the proxy's log:\n%s", errLog)
		}
	})
	return rollingtest.Run(t, rolling.Config{
		Command: rolling.ExampleServer(bin, addr, shutdown, t.TempDir()),
		Mode:    rolling.Handoff,
		Load:    load,
	})
}
