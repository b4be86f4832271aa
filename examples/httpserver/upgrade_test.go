//go:build unix

package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// TestUpgradeOnHUP is -upgrade-on-hup's promise: on SIGHUP the server
// starts its own executable again, which takes the socket over -handoff,
// and the old process drains and exits 0, leaving the new one serving.
func TestUpgradeOnHUP(t *testing.T) {
	if c := reuseport.Capabilities(); !c.Share {
		t.Skipf("this OS cannot share ports: %v", c.Err)
	}
	path := filepath.Join(t.TempDir(), "w1.sock")
	first := startServer(t, "-addr", "127.0.0.1:0", "-handoff", path, "-upgrade-on-hup", "-shutdown-timeout", "5s")
	// The successor writes to the first one's stderr, which it inherits.
	upgrading := regexp.MustCompile(`pid=` + strconv.Itoa(first.PID) + ` .*msg="handoff: upgrading: starting a successor"`)
	upgraded := regexp.MustCompile(`pid=` + strconv.Itoa(first.PID) + ` .*msg="handoff: upgraded" successor_pid=(\d+)`)
	// Once: handoff.Run catches the signal from its start, so one sent as
	// soon as the server says it listens is the upgrade, never its death.
	if err := first.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var m []string
	deadline := time.Now().Add(servercmdtest.Timeout)
	for ; m == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		m = upgraded.FindStringSubmatch(first.Log.String())
	}
	if !upgrading.MatchString(first.Log.String()) {
		t.Errorf("pid=%d did not log that it starts a successor", first.PID)
	}
	if m == nil {
		t.Fatalf("pid=%d did not log that it upgraded within %v:\n%s", first.PID, servercmdtest.Timeout, first.Log)
	}
	successor, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { syscall.Kill(successor, syscall.SIGKILL) })
	for pid := range get(t, first.Addr, 20) {
		if pid != successor {
			t.Errorf("pid %d answered after the upgrade; want only the successor, pid %d", pid, successor)
		}
	}
	if err := syscall.Kill(successor, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Done closes once both have exited: the successor holds the pipe too.
	if err := first.Wait(t); err != nil {
		t.Fatalf("pid=%d exited with %v, want status 0:\n%s", first.PID, err, first.Log)
	}
	if drained := "pid=" + strconv.Itoa(first.PID) + " "; !strings.Contains(first.Log.String(), drained) ||
		!regexp.MustCompile(regexp.QuoteMeta(drained)+`.*msg="handoff: drained"`).MatchString(first.Log.String()) {
		t.Errorf("pid=%d did not drain:\n%s", first.PID, first.Log)
	}
}
