package main

import (
	"bufio"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
)

// server is a grpcserver process started by a test.
type server struct {
	cmd  *exec.Cmd
	addr string
	pid  int
	log  *lockedBuffer
	done chan struct{} // closed once it has exited; err is then set
	err  error
}

var listeningRE = regexp.MustCompile(`listening on (\S+)`)

// startServer runs the server binary with args and waits until it serves.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(build(t, "grpcserver", "build"), args...), log: new(lockedBuffer), done: make(chan struct{})}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = s.cmd.Process.Pid
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.log.Write([]byte(sc.Text() + "\n"))
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	select {
	case s.addr = <-ready:
	case <-s.done:
		t.Fatalf("grpcserver %v exited before serving: %v\n%s", args, s.err, s.log)
	case <-time.After(10 * time.Second):
		t.Fatalf("grpcserver %v did not serve within 10s:\n%s", args, s.log)
	}
	return s
}

// wait waits for the server to exit by itself and returns its error.
func (s *server) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d still running 10s later:\n%s", s.pid, s.log)
		return nil
	}
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
	if got := checkPID(t, first.addr); got != first.pid {
		t.Errorf("answered by pid %d, want %d", got, first.pid)
	}

	second := startServer(t, "-addr", "127.0.0.1:0", "-handoff", path)
	if second.addr != first.addr {
		t.Errorf("the successor listens on %s, want the predecessor's %s", second.addr, first.addr)
	}
	if !strings.Contains(second.log.String(), "socket: inherited") {
		t.Errorf("the successor did not inherit the socket:\n%s", second.log)
	}
	if err := first.wait(t); err != nil {
		t.Errorf("the predecessor exited with %v, want status 0:\n%s", err, first.log)
	}
	if got := checkPID(t, first.addr); got != second.pid {
		t.Errorf("after the handoff, answered by pid %d, want the successor %d", got, second.pid)
	}

	second.cmd.Process.Signal(syscall.SIGTERM)
	if err := second.wait(t); err != nil {
		t.Errorf("SIGTERM: the server exited with %v, want status 0:\n%s", err, second.log)
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
		cmd := exec.Command(build(t, "grpcserver", "build"), args...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("grpcserver %v: %v, want exit status 2\n%s", args, err, out)
		}
	}
}
