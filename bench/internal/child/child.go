// Package child runs helper processes for the benchmarks: the running binary
// re-executed in a named role, talking to its parent in JSON lines.
//
// The parent starts a child with [Start] and reads the messages it sends with
// [Proc.Recv]. Closing the child's standard input is the signal to stop, so
// a child whose parent dies stops too; the parent then reads the child's last
// message with [Proc.Stop]. Each child also has a deadline of its own after
// which it exits whatever its parent does.
package child

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	envRole     = "BENCHALL_CHILD_ROLE"
	envDeadline = "BENCHALL_CHILD_DEADLINE"
)

// Role reports the role this process was started in, or "" in a parent.
func Role() string { return os.Getenv(envRole) }

// Deadline is when this child must have exited, set by its parent.
func Deadline() time.Time {
	t, err := time.Parse(time.RFC3339Nano, os.Getenv(envDeadline))
	if err != nil {
		return time.Now().Add(time.Minute)
	}
	return t
}

// Send writes one message to the parent.
func Send(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}

// StopRequested is closed when the parent asks this child to stop (by
// closing its standard input, which also happens when the parent dies) or
// when the child's deadline passes.
func StopRequested() <-chan struct{} {
	stop := make(chan struct{})
	var once sync.Once
	done := func() { once.Do(func() { close(stop) }) }
	go func() {
		io.Copy(io.Discard, os.Stdin)
		done()
	}()
	time.AfterFunc(time.Until(Deadline()), done)
	return stop
}

// Proc is a running child.
type Proc struct {
	Role string
	cmd  *exec.Cmd
	in   io.WriteCloser
	msgs chan []byte
	// stderr keeps the child's last words for error messages.
	stderr *tailBuffer
	exited chan struct{}
	err    error // from Wait, valid once exited is closed
}

// Start runs the current executable in role with args. The files in extra
// become descriptors 3, 4, ... of the child. The child must exit by
// deadline.
func Start(role string, args []string, extra []*os.File, deadline time.Time) (*Proc, error) {
	return start(role, args, extra, deadline, 0)
}

// StartIsolated is [Start] for a child in a network namespace of its own,
// where it may set per-namespace sysctls without touching the host's. The
// namespace has only a loopback interface, down until the child brings it
// up. The child is also the first process of a new pid namespace, so that
// when it dies, however it dies, the kernel kills every process it
// started: nothing can go on running in a network namespace nobody can
// reach. /proc still shows the host's pids. It needs root.
func StartIsolated(role string, args []string, deadline time.Time) (*Proc, error) {
	return start(role, args, nil, deadline, syscall.CLONE_NEWNET|syscall.CLONE_NEWPID)
}

func start(role string, args []string, extra []*os.File, deadline time.Time, cloneflags uintptr) (*Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envRole+"="+role, envDeadline+"="+deadline.Format(time.RFC3339Nano))
	cmd.ExtraFiles = extra
	// Standard input closing is the main stop signal; this catches a parent
	// killed before it could close it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Cloneflags: cloneflags}
	p := &Proc{Role: role, cmd: cmd, msgs: make(chan []byte, 16), stderr: &tailBuffer{max: 4096}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if p.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting child %s: %w", role, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.msgs <- bytes.Clone(sc.Bytes())
		}
		close(p.msgs)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Recv decodes the child's next message into v, waiting at most timeout.
func (p *Proc) Recv(v any, timeout time.Duration) error {
	select {
	case m, ok := <-p.msgs:
		if !ok {
			<-p.exited
			return fmt.Errorf("child %s (pid %d) exited before sending: %v\n%s", p.Role, p.Pid(), p.err, p.stderr)
		}
		if err := json.Unmarshal(m, v); err != nil {
			return fmt.Errorf("child %s (pid %d) sent %q: %w", p.Role, p.Pid(), m, err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("child %s (pid %d) sent nothing in %v\n%s", p.Role, p.Pid(), timeout, p.stderr)
	}
}

// Stop asks the child to stop and decodes its last message into v, if v is
// not nil. A child still running after timeout is killed.
func (p *Proc) Stop(v any, timeout time.Duration) error {
	p.in.Close()
	var recvErr error
	if v != nil {
		recvErr = p.Recv(v, timeout)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.Kill()
		return errors.Join(recvErr, fmt.Errorf("child %s (pid %d) did not exit within %v; killed\n%s", p.Role, p.Pid(), timeout, p.stderr))
	}
	if p.err != nil {
		return errors.Join(recvErr, fmt.Errorf("child %s (pid %d): %w\n%s", p.Role, p.Pid(), p.err, p.stderr))
	}
	return recvErr
}

// Kill ends the child at once; for cleanup after an error.
func (p *Proc) Kill() {
	p.in.Close()
	p.cmd.Process.Kill()
	// The reader must not block on a full queue, or it never reaps.
	go func() {
		for range p.msgs {
		}
	}()
	<-p.exited
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
