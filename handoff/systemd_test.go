//go:build linux

package handoff_test

import (
	"bufio"
	"context"

	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/b93f8b21/reuseport/handoff"
)

// The "runall" role: RunAll with UpgradeSignal SIGHUP and activation, on
// HANDOFF_TEST_LISTEN (one TCP address), serving a server that answers
// each connection with its pid; slog records go to stderr.
const (
	envFailIf    = "HANDOFF_TEST_FAIL_IF"    // exit 3 at once if this file exists
	envFDStore   = "HANDOFF_TEST_FDSTORE"    // set Config.FDStore
	envListenPID = "HANDOFF_TEST_LISTEN_PID" // set LISTEN_PID to this process, as systemd would
)

func runRunAll() int {
	if f := os.Getenv(envFailIf); f != "" {
		if _, err := os.Stat(f); err == nil {
			fmt.Fprintln(os.Stderr, "failing at start on purpose:", f, "exists")
			return 3
		}
	}
	if os.Getenv(envListenPID) != "" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := handoff.RunConfig{
		Config: handoff.Config{
			Path:       os.Getenv(envPath),
			Activation: true,
			FDStore:    os.Getenv(envFDStore) != "",
			Logger:     slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid()),
		},
		ShutdownTimeout: 10 * time.Second,
		UpgradeSignal:   syscall.SIGHUP,
		OnReady:         func(a net.Addr) { emit(event{Ev: "serving", Pid: os.Getpid(), Msg: a.String()}) },
	}
	err := handoff.RunAll(ctx, cfg, handoff.Service{Network: "tcp", Address: os.Getenv(envListen), Server: newPIDServer()})
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	emit(event{Ev: "done", Pid: os.Getpid(), Msg: msg})
	return 0
}

// pidServer answers each connection's first byte with its pid and a
// newline, as askPID expects.
type pidServer struct{ wg sync.WaitGroup }

func newPIDServer() *pidServer { return new(pidServer) }

func (s *pidServer) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		s.wg.Go(func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var b [1]byte
			if _, err := c.Read(b[:]); err == nil {
				fmt.Fprintf(c, "%d\n", os.Getpid())
			}
		})
	}
}

func (s *pidServer) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fakeSystemd is a NOTIFY_SOCKET: it records every message, and keeps the
// descriptors that come with them (FDSTORE=1).
type fakeSystemd struct {
	path string
	mu   sync.Mutex
	msgs []string
	fds  []int
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	f := &fakeSystemd{path: filepath.Join(t.TempDir(), "notify")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		c.Close()
		<-done
		f.mu.Lock()
		closeAllFDs(f.fds)
		f.mu.Unlock()
	})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(16*4))
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			var fds []int
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for i := range msgs {
					if r, err := unix.ParseUnixRights(&msgs[i]); err == nil {
						fds = append(fds, r...)
					}
				}
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, string(buf[:n]))
			f.fds = append(f.fds, fds...)
			f.mu.Unlock()
		}
	}()
	return f
}

func closeAllFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// wait waits for a message containing every one of parts, and returns it.
func (f *fakeSystemd) wait(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, m := range f.msgs {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(m, p)
			}
			if all {
				f.mu.Unlock()
				return m
			}
		}
		f.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Fatalf("systemd never heard %q; it heard %q", parts, f.msgs)
	return ""
}

// expectFrom waits for event ev from pid (any pid if 0). Events it reads
// that do not match wait in p.backlog for a later call.
func (p *proc) expectFrom(ev string, pid int, timeout time.Duration) event {
	p.t.Helper()
	match := func(e event) bool { return e.Ev == ev && (pid == 0 || e.Pid == pid) }
	for i, e := range p.backlog {
		if match(e) {
			p.backlog = append(p.backlog[:i], p.backlog[i+1:]...)
			return e
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-p.events:
			if !ok {
				p.t.Fatalf("no %q event from pid %d: the processes have exited", ev, pid)
			}
			if match(e) {
				return e
			}
			p.backlog = append(p.backlog, e)
		case <-deadline:
			p.t.Fatalf("no %q event from pid %d within %v", ev, pid, timeout)
		}
	}
}

// stderrHas waits until the processes' stderr contains s.
func (p *proc) stderrHas(s string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(p.stderr.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// pidLoad asks for the pid over fresh connections until stopped.
type pidLoad struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	done       chan struct{}
}

func startPIDLoad(addr string) *pidLoad {
	l := &pidLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-l.stop:
				return
			default:
			}
			if err := pidOnce(addr); err != nil {
				l.failed.Add(1)
				l.lastErr.Store(err.Error())
			} else {
				l.ok.Add(1)
			}
		}
	}()
	return l
}

func (l *pidLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func pidOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if _, err := strconv.Atoi(strings.TrimSpace(line)); err != nil {
		return fmt.Errorf("answer %q", line)
	}
	return nil
}

// TestUpgradeOnSignal: SIGHUP makes the process start its own executable
// as its successor and leave once it serves, telling systemd as
// Type=notify-reload wants: RELOADING=1 with MONOTONIC_USEC, then, from
// the old main process, MAINPID=<new> and READY=1. A successor that fails
// leaves the old process serving, with READY=1 and a STATUS= saying why.
// Fresh connections throughout lose nothing.
func TestUpgradeOnSignal(t *testing.T) {
	sd := newFakeSystemd(t)
	failIf := filepath.Join(t.TempDir(), "fail")
	p := startProc(t, "runall", envPath+"="+sockPath(t), envListen+"=127.0.0.1:0", envFailIf+"="+failIf,
		"NOTIFY_SOCKET="+sd.path, "INVOCATION_ID=test")
	first := p.expectFrom("serving", p.pid(), 10*time.Second)
	addr := first.Msg
	var pids sync.Map // every generation, killed at the end
	t.Cleanup(func() {
		pids.Range(func(k, _ any) bool { syscall.Kill(k.(int), syscall.SIGKILL); return true })
	})
	sd.wait(t, "READY=1", fmt.Sprintf("MAINPID=%d", first.Pid))
	load := startPIDLoad(addr)
	defer load.halt()

	pid := first.Pid
	for round := range 2 {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		next := p.expectFrom("serving", 0, 15*time.Second)
		pids.Store(next.Pid, true)
		if next.Pid == pid || next.Msg != addr {
			t.Fatalf("round %d: after SIGHUP to %d, pid %d serves %s; want a new pid on %s", round, pid, next.Pid, next.Msg, addr)
		}
		if e := p.expectFrom("done", pid, 15*time.Second); e.Msg != "" {
			t.Fatalf("round %d: the upgraded process returned %q", round, e.Msg)
		}
		sd.wait(t, "RELOADING=1", "MONOTONIC_USEC=")
		sd.wait(t, fmt.Sprintf("MAINPID=%d", next.Pid), "READY=1")
		if got := askPID(t, "tcp", addr); got != next.Pid {
			t.Fatalf("round %d: pid %d answers, want the successor %d", round, got, next.Pid)
		}
		pid = next.Pid
	}

	// A successor that fails: the running process stays, and says so.
	if err := os.WriteFile(failIf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sd.wait(t, "READY=1", "STATUS=upgrade failed, still serving", "exited before it served")
	if got := askPID(t, "tcp", addr); got != pid {
		t.Fatalf("after a failed upgrade pid %d answers, want %d still", got, pid)
	}

	load.halt() // before the last stop, which ends the service
	syscall.Kill(pid, syscall.SIGTERM)
	if e := p.expectFrom("done", pid, 15*time.Second); e.Msg != "" {
		t.Fatalf("last generation returned %q", e.Msg)
	}
	sd.wait(t, "STOPPING=1")
	t.Logf("fresh connections during 2 upgrades and a failed one: %d answered, %d failed", load.ok.Load(), load.failed.Load())
	if n := load.failed.Load(); n != 0 {
		t.Errorf("%d connections failed, want 0; last: %v", n, load.lastErr.Load())
	}
}

// TestUpgradeRefusedWithoutNotify: under systemd without NOTIFY_SOCKET
// (Type=simple), an upgrade would end the service; it is refused and the
// process goes on serving.
func TestUpgradeRefusedWithoutNotify(t *testing.T) {
	p := startProc(t, "runall", envPath+"="+sockPath(t), envListen+"=127.0.0.1:0", "INVOCATION_ID=test", "NOTIFY_SOCKET=")
	first := p.expectFrom("serving", p.pid(), 10*time.Second)
	if err := syscall.Kill(first.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !p.stderrHas("upgrade failed; still serving", 10*time.Second) {
		t.Fatalf("no refusal logged:\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "Type=simple") {
		t.Errorf("the refusal does not name the cause:\n%s", p.stderr.String())
	}
	if got := askPID(t, "tcp", first.Msg); got != first.Pid {
		t.Fatalf("pid %d answers, want %d still", got, first.Pid)
	}
}

// TestFDStoreKeepsQueueAcrossKill: with Config.FDStore, the sockets go to
// systemd's fd store (here a fake one); after a kill -9 of the only
// process, a connection made while no process lives waits in the stored
// socket's queue, and the process started next with the stored socket
// (LISTEN_FDS, LISTEN_FDNAMES=handoff) answers it.
func TestFDStoreKeepsQueueAcrossKill(t *testing.T) {
	sd := newFakeSystemd(t)
	path := sockPath(t)
	p1 := startProc(t, "runall", envPath+"="+path, envListen+"=127.0.0.1:0", envFDStore+"=1", "NOTIFY_SOCKET="+sd.path)
	first := p1.expectFrom("serving", p1.pid(), 10*time.Second)
	sd.wait(t, "FDSTORE=1", "FDNAME=handoff")
	sd.mu.Lock()
	if len(sd.fds) != 1 {
		sd.mu.Unlock()
		t.Fatalf("systemd got %d descriptors to store, want 1", len(sd.fds))
	}
	stored := os.NewFile(uintptr(sd.fds[0]), "stored")
	sd.fds = nil
	sd.mu.Unlock()
	defer stored.Close()

	p1.cmd.Process.Kill()
	p1.wait(10 * time.Second)

	// No process serves; the stored socket still listens.
	c, err := net.DialTimeout("tcp", first.Msg, 5*time.Second)
	if err != nil {
		t.Fatalf("dial while no process serves: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}

	cmd := newProcCmd("runall", envPath+"="+path, envListen+"=127.0.0.1:0", envFDStore+"=1", "NOTIFY_SOCKET="+sd.path,
		envListenPID+"=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=handoff")
	cmd.ExtraFiles = []*os.File{stored}
	p2 := runProc(t, cmd)
	second := p2.expectFrom("serving", p2.pid(), 10*time.Second)
	if second.Msg != first.Msg {
		t.Fatalf("the restarted process serves %s, want the stored socket's %s", second.Msg, first.Msg)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("the connection queued while no process lived: %v", err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(line)); got != p2.pid() {
		t.Fatalf("queued connection answered by %q, want pid %d", line, p2.pid())
	}
	if !p2.stderrHas("origin=stored", 10*time.Second) {
		t.Errorf("the restarted process does not log origin=stored:\n%s", p2.stderr.String())
	}
	syscall.Kill(p2.pid(), syscall.SIGTERM)
	p2.expectFrom("done", p2.pid(), 15*time.Second)
	sd.wait(t, "STOPPING=1")
}
