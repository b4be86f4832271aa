//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

// runOnce runs srv until it is ready, calls during with its address, then
// stops it and returns what Run returned.
func runOnce(t *testing.T, srv handoff.Server, during func(addr net.Addr)) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := handoff.RunConfig{OnReady: func(addr net.Addr) { during(addr); cancel() }}
	done := make(chan error, 1)
	go func() { done <- handoff.Run(ctx, cfg, "tcp", "127.0.0.1:0", srv) }()
	select {
	case err := <-done:
		return err
	case <-time.After(runWait):
		t.Fatalf("Run did not return within %v", runWait)
	}
	return nil
}

// get asks addr for / on a fresh connection and reports the body and
// whether the server asked to close the connection.
func get(t *testing.T, addr net.Addr) (string, bool, error) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: runWait}
	resp, err := c.Get("http://" + addr.String() + "/")
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Close, err
}

// TestRunLeavesTheServerAlone: Run must not write into the *http.Server it
// is given. Serving the same Handler afterwards with a plain http.Server
// must keep connections alive, and Handler and ConnState must be the
// caller's.
func TestRunLeavesTheServerAlone(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	var states atomic.Int32
	hook := func(net.Conn, http.ConnState) { states.Add(1) }
	srv := &http.Server{Handler: h, ConnState: hook}
	if err := runOnce(t, srv, func(addr net.Addr) {
		if body, _, err := get(t, addr); err != nil || body != "hi" {
			t.Errorf("request during Run: %q %v", body, err)
		}
	}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if reflect.ValueOf(srv.Handler).Pointer() != reflect.ValueOf(h).Pointer() {
		t.Errorf("Run replaced the server's Handler with %T", srv.Handler)
	}
	if reflect.ValueOf(srv.ConnState).Pointer() != reflect.ValueOf(hook).Pointer() {
		t.Error("Run replaced the server's ConnState")
	}
	if states.Load() == 0 {
		t.Error("the server's ConnState hook saw no connection during Run")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: srv.Handler}
	go plain.Serve(ln)
	defer plain.Close()
	for i := range 2 {
		if body, closing, err := get(t, ln.Addr()); err != nil || body != "hi" || closing {
			t.Errorf("request %d to a plain server with the handler Run was given: %q Connection: close=%v %v", i, body, closing, err)
		}
	}
}

// TestRunTwice: a second Run with the same *http.Server must serve.
func TestRunTwice(t *testing.T) {
	srv := helloServer("again")
	for i := range 2 {
		if err := runOnce(t, srv, func(addr net.Addr) {
			if body, _, err := get(t, addr); err != nil || body != "again" {
				t.Errorf("run %d: request: %q %v", i+1, body, err)
			}
		}); err != nil {
			t.Errorf("run %d: Run returned %v", i+1, err)
		}
	}
}

// TestRunShutdownFailsAtOnce: a Shutdown that fails with its own error is
// not a timeout.
func TestRunShutdownFailsAtOnce(t *testing.T) {
	broken := errors.New("shutdown is broken")
	srv := handoff.Funcs(acceptAll, func(context.Context) error { return broken })
	start := time.Now()
	err := runOnce(t, srv, func(net.Addr) {})
	if !errors.Is(err, broken) {
		t.Errorf("Run returned %v, want an error wrapping %v", err, broken)
	}
	if err != nil && (strings.Contains(err.Error(), "timeout") || strings.Contains(err.Error(), "within")) {
		t.Errorf("Run's error speaks of a timeout, though none expired: %v", err)
	}
	if d := time.Since(start); d > runWait/2 {
		t.Errorf("Run took %v", d)
	}
}
