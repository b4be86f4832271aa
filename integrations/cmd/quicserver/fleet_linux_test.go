package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	log   *lockedBuffer
}

// copyProc is one running copy.
type copyProc struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{} // closed once the process has been waited for
	err    error         // its exit status, once exited is closed
}

func newFleet(t *testing.T, addr string, steer bool) *fleet {
	t.Helper()
	f := &fleet{t: t, bin: os.Getenv(envBinary), addr: addr, steer: steer, log: new(lockedBuffer)}
	var err error
	if f.dir, err = os.MkdirTemp("", "quicserver-handoff"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(f.dir) })
	if realRoot() {
		f.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
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

var readyLine = regexp.MustCompile(`pid=(\d+) listening on `)

// start runs a copy, as worker w (whose -handoff path it uses if handoff
// is set), and waits until it serves.
func (f *fleet) start(w int, handoff bool) *copyProc {
	f.t.Helper()
	args := []string{"-addr", f.addr, "-steer=" + strconv.FormatBool(f.steer), "-shutdown-timeout", "10s"}
	if handoff {
		args = append(args, "-handoff", filepath.Join(f.dir, fmt.Sprintf("w%d.sock", w)))
	}
	cmd := exec.Command(f.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: f.cred, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &copyProc{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(f.log, "%s %s\n", time.Now().Format("15:04:05.000"), line)
			if m := readyLine.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[1])
				ready <- pid
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	f.t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	select {
	case p.pid = <-ready:
		if f.cred != nil {
			f.checkUnprivileged(p)
		}
		return p
	case <-p.exited:
		f.t.Fatalf("worker %d exited before serving: %v\n%s", w, p.err, f.log)
	case <-time.After(10 * time.Second):
		f.t.Fatalf("worker %d not serving after 10s\n%s", w, f.log)
	}
	return nil
}

// checkUnprivileged fails the test unless p runs as nobody: the steering
// must need no privilege.
func (f *fleet) checkUnprivileged(p *copyProc) {
	f.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		f.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Fields(line); len(fields) == 5 && fields[0] == "Uid:" {
			if want := strconv.Itoa(nobody); fields[2] != want {
				f.t.Fatalf("pid %d runs with effective uid %s, want %s", p.pid, fields[2], want)
			}
			return
		}
	}
	f.t.Fatalf("no Uid line in /proc/%d/status", p.pid)
}

// wait waits for p to exit by itself, and fails the test unless it exits 0
// within d.
func (f *fleet) wait(p *copyProc, d time.Duration) {
	f.t.Helper()
	select {
	case <-p.exited:
		if p.err != nil {
			f.t.Errorf("pid %d: %v", p.pid, p.err)
		}
	case <-time.After(d):
		f.t.Errorf("pid %d still running %v after it was told to stop", p.pid, d)
	}
}

// lockedBuffer collects the servers' log while they write it.
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
