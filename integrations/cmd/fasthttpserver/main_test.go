package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

func TestMain(m *testing.M) { servercmdtest.Main(m, main) }

// TestHandoffKeepsKeepAlive is -handoff's promise in the small, with a
// keep-alive connection open across it: a second copy takes over the
// socket, the first answers the next request on its connection with
// "Connection: close", closes it, and exits 0 by itself; new connections
// reach the second.
func TestHandoffKeepsKeepAlive(t *testing.T) {
	if c := reuseport.Capabilities(); !c.Share {
		t.Skipf("this OS cannot share ports: %v", c.Err)
	}
	path := filepath.Join(t.TempDir(), "w1.sock")
	first := startServer(t, "-addr", "127.0.0.1:0", "-handoff", path, "-shutdown-timeout", "10s")
	kept := dialKeepAlive(t, first.Addr)
	if pid, closing := kept.post(t); pid != first.PID || closing {
		t.Fatalf("first response: pid %d, Connection: close %v; want pid %d, keep-alive", pid, closing, first.PID)
	}

	second := startServer(t, "-addr", first.Addr, "-handoff", path)
	if servercmdtest.Listened(second.Log.String(), "inherited") == 0 {
		t.Errorf("the successor does not say it inherited its socket:\n%s", second.Log)
	}
	// The first copy drains, and keeps the idle connection open for the
	// grace (2s, counted from its last response). The successor is ready a
	// moment before the first learns of it and begins its drain, and a
	// request in between is answered as usual: ask again, boundedly, until
	// the drain answers, always on the same connection to the first.
	deadline := time.Now().Add(5 * time.Second)
	for tries := 1; ; tries++ {
		pid, closing := kept.post(t)
		if pid != first.PID {
			t.Fatalf("request %d on the kept connection after the handoff: answered by pid %d, want the draining first copy, pid %d", tries, pid, first.PID)
		}
		if closing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests on the kept connection, for 5s after the handoff, answered without Connection: close", tries)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-first.Done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid=%d still running 10s after its successor served:\n%s", first.PID, first.Log)
	}
	if first.Err != nil {
		t.Fatalf("pid=%d exited with %v, want status 0:\n%s", first.PID, first.Err, first.Log)
	}
	if !strings.Contains(first.Log.String(), "shutting down: a successor took over") {
		t.Errorf("pid=%d did not say why it left:\n%s", first.PID, first.Log)
	}
	again := dialKeepAlive(t, first.Addr)
	if pid, _ := again.post(t); pid != second.PID {
		t.Errorf("pid %d answered a new connection after the handoff; want the successor, pid %d", pid, second.PID)
	}
	again.c.Close()
	second.Stop(t, syscall.SIGTERM)
}

// TestCommandLineErrors checks what a user sees for a command line that
// cannot work: a message on stderr, status 2, and no server.
func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantStderr string
	}{
		{"help", []string{"-h"}, 0, "usage: fasthttpserver"},
		{"unknown flag", []string{"-nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{"argument", []string{"-addr", "127.0.0.1:0", "extra"}, 2, `unexpected argument "extra"`},
		{"zero timeout", []string{"-shutdown-timeout", "0s"}, 2, "-shutdown-timeout must be positive"},
		{"bad shutdown", []string{"-shutdown", "stdlib"}, 2, "-shutdown must be drain or native"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := servercmdtest.Self(tt.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := servercmdtest.Run(t, cmd)
			if status := cmd.ProcessState.ExitCode(); status != tt.wantStatus {
				t.Errorf("exit status %d (%v), want %d", status, err, tt.wantStatus)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr does not say %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

// keepAlive is one HTTP/1.1 connection that a test sends POSTs on.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, br: bufio.NewReader(c)}
}

// post sends a POST and returns the pid that answered and whether the
// response said "Connection: close".
func (k *keepAlive) post(t *testing.T) (pid int, closing bool) {
	t.Helper()
	k.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(k.c, "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nping"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %q: %v", resp.Status, body, err)
	}
	return loadgen.ParsePID(body), resp.Close
}

// startServer starts main in a new process and waits until it says it is
// listening. The process is killed at the end of the test if still running.
func startServer(t *testing.T, args ...string) *servercmdtest.Proc {
	t.Helper()
	return servercmdtest.Start(t, servercmdtest.Self(args...))
}
