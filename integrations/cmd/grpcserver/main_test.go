package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// startServer runs the server binary with args and waits until it serves.
func startServer(t *testing.T, args ...string) *servercmdtest.Proc {
	t.Helper()
	return servercmdtest.Start(t, exec.Command(servercmdtest.Build(t, "grpcserver", ".", "build"), args...))
}

// checkPID sends one health check to addr and returns the pid that
// answered.
func checkPID(t *testing.T, addr string) int {
	t.Helper()
	c := &grpcClient{addr: addr}
	pid, err := c.Do(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatalf("Health/Check on %s: %v", addr, err)
	}
	return pid
}

// TestHandoffReplacesServer is -handoff's promise in the small: a second
// copy started with the same -addr and -handoff takes the socket over, the
// first leaves by itself with status 0, and SIGTERM stops the second with
// status 0 after draining.
func TestHandoffReplacesServer(t *testing.T) {
	if c := reuseport.Capabilities(); !c.Share {
		t.Skipf("this OS cannot share ports: %v", c.Err)
	}
	path := filepath.Join(t.TempDir(), "w1.sock")
	first := startServer(t, "-addr", "127.0.0.1:0", "-handoff", path)
	if got := checkPID(t, first.Addr); got != first.PID {
		t.Errorf("answered by pid %d, want %d", got, first.PID)
	}

	second := startServer(t, "-addr", "127.0.0.1:0", "-handoff", path)
	if second.Addr != first.Addr {
		t.Errorf("the successor listens on %s, want the predecessor's %s", second.Addr, first.Addr)
	}
	if servercmdtest.Listened(second.Log.String(), "inherited") == 0 {
		t.Errorf("the successor did not inherit the socket:\n%s", second.Log)
	}
	if err := first.Wait(t); err != nil {
		t.Errorf("the predecessor exited with %v, want status 0:\n%s", err, first.Log)
	}
	if got := checkPID(t, first.Addr); got != second.PID {
		t.Errorf("after the handoff, answered by pid %d, want the successor %d", got, second.PID)
	}

	second.Cmd.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(t); err != nil {
		t.Errorf("SIGTERM: the server exited with %v, want status 0:\n%s", err, second.Log)
	}
}

// TestBadFlags: a command line that cannot run exits with status 2.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-shutdown", "later"},
		{"-shutdown-timeout", "0s"},
		{"extra"},
		{"-nosuchflag"},
	} {
		cmd := exec.Command(servercmdtest.Build(t, "grpcserver", ".", "build"), args...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("grpcserver %v: %v, want exit status 2\n%s", args, err, out)
		}
	}
}
