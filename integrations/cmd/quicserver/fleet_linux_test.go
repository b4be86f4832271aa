package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// nobody is the uid and gid the servers run as, so that the tests show
// that steering needs no privilege.
const nobody = 65534

// fleet runs copies of the server on one port, as an unprivileged user.
type fleet struct {
	t     *testing.T
	bin   string
	addr  string
	steer bool
	dir   string // for the -handoff sockets, writable by the servers' user
	cred  *syscall.Credential
	procs []*servercmdtest.Proc
}

func newFleet(t *testing.T, addr string, steer bool) *fleet {
	t.Helper()
	f := &fleet{t: t, bin: os.Getenv(envBinary), addr: addr, steer: steer}
	var err error
	if f.dir, err = os.MkdirTemp("", "quicserver-handoff"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(f.dir) })
	if realRoot() {
		f.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		f.bin = testenv.ShareBinary(t, f.bin)
		if err := os.Chown(f.dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	} else {
		// In the user namespace nstest makes for a user without root,
		// only that user is mapped: the servers are unprivileged anyway.
		t.Logf("not root outside the namespace: the servers run as the user running the test")
	}
	return f
}

// realRoot reports whether this process is root in the initial user
// namespace, where it may become any user.
func realRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && strings.Fields(string(b))[2] == "4294967295"
}

// start runs a copy, as worker w (whose -handoff path it uses if handoff
// is set), and waits until it serves.
func (f *fleet) start(w int, handoff bool) *servercmdtest.Proc {
	f.t.Helper()
	args := []string{"-addr", f.addr, "-steer=" + strconv.FormatBool(f.steer), "-shutdown-timeout", "5s"}
	if handoff {
		args = append(args, "-handoff", filepath.Join(f.dir, fmt.Sprintf("w%d.sock", w)))
	}
	cmd := exec.Command(f.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: f.cred, Pdeathsig: syscall.SIGKILL}
	p := servercmdtest.Start(f.t, cmd)
	f.procs = append(f.procs, p)
	if f.cred != nil {
		f.checkUnprivileged(p.PID)
	}
	return p
}

// checkUnprivileged fails the test unless pid runs as nobody: the
// steering must need no privilege.
func (f *fleet) checkUnprivileged(pid int) {
	f.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		f.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Fields(line); len(fields) == 5 && fields[0] == "Uid:" {
			if want := strconv.Itoa(nobody); fields[2] != want {
				f.t.Fatalf("pid %d runs with effective uid %s, want %s", pid, fields[2], want)
			}
			return
		}
	}
	f.t.Fatalf("no Uid line in /proc/%d/status", pid)
}

// log is every copy's log, one after the other.
func (f *fleet) log() string {
	var b strings.Builder
	for _, p := range f.procs {
		fmt.Fprintf(&b, "--- pid %d\n%s", p.PID, p.Log)
	}
	return b.String()
}
