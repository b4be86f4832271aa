package systest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/loadgen"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/rolling"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// crashRun is how long each crash test kills workers under load; one
// worker dies every second.
const crashRun = 20 * time.Second

// parked is how many connections the queue tests park in a worker's queue.
const parked = 32

// TestCrashResetsQueue kills a worker of three every second under load,
// with tcp_migrate_req=0: each death resets the connections waiting in its
// socket's queue, and the clients see it. This is the loss the other
// crash runs are measured against, and it shows the harness can see loss.
func TestCrashResetsQueue(t *testing.T) {
	if isolate(t, crashRun) {
		return
	}
	res := runCrashes(t, "0", false)
	if res.Load.Failed() == 0 {
		t.Errorf("%d workers killed, yet no client saw a failure: the harness cannot see loss", len(res.Restarts))
	}
}

// TestCrashMigrate checks what tcp_migrate_req=1 does for a crash: the
// kernel moves a killed worker's queue to a live worker of the group.
// Connections are parked in one worker's queue (the worker is stopped
// with SIGSTOP, so nothing it accepted is in flight), a second worker
// joins the group, and the first is killed with SIGKILL: every parked
// connection must be answered by the second. The control, with
// tcp_migrate_req=0, must lose every one of them.
//
// Under load (not -short) it then runs TestCrashResetsQueue's crashes
// with tcp_migrate_req=1 and reports what remains lost: what the killed
// process had accepted and not answered, which only it could answer. That
// figure depends on how many connections each kill catches in flight, and
// is reported, not asserted.
func TestCrashMigrate(t *testing.T) {
	if isolate(t, 0) {
		return
	}
	for _, migrate := range []string{"1", "0"} {
		t.Run("parked/tcp_migrate_req="+migrate, func(t *testing.T) {
			if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", migrate); err != nil {
				t.Fatal(err)
			}
			first := start(t, "-addr", "127.0.0.1:0", "-shutdown-timeout", "5s")
			conns := park(t, first)
			second := start(t, "-addr", first.Addr, "-shutdown-timeout", "5s")
			first.Cmd.Process.Kill()
			<-first.Done
			served, bySecond := answered(conns, second.PID)
			t.Logf("tcp_migrate_req=%s: %d of %d connections parked in a killed worker's queue answered, %d by the live one (pid %d -> %d)", migrate, served, parked, bySecond, first.PID, second.PID)
			if migrate == "1" && bySecond != parked {
				t.Errorf("with tcp_migrate_req=1 the live worker answered %d of the %d connections parked in the killed one's queue, want all", bySecond, parked)
			}
			if migrate == "0" && served != 0 {
				t.Errorf("with tcp_migrate_req=0 %d of %d connections parked in a killed worker's queue were answered; want none (the control must show the loss)", served, parked)
			}
		})
	}
	if !short() {
		t.Run("load", func(t *testing.T) { runCrashes(t, "1", false) })
	}
}

// TestCrashActivatedSockets holds each worker's listening socket in a
// parent, as systemd socket activation does, and starts every worker with
// it as descriptor 3 (LISTEN_FDS). A killed worker's socket stays open, so
// its queue waits for the replacement instead of being reset; no listener
// ever closes, so no connection fails before a server accepts it. What a
// SIGKILL still loses is what the dead process had accepted and not yet
// answered: nothing can save those, and the figure is reported.
// TestCrashKeepsQueue shows the queue's part without that noise.
func TestCrashActivatedSockets(t *testing.T) {
	if isolate(t, crashRun) {
		return
	}
	res := runCrashes(t, "0", true)
	for kind, n := range res.Load.Failures {
		if strings.HasPrefix(kind, "dial:") {
			t.Errorf("with the sockets held by the parent, %d connections failed before any server accepted them: %s", n, res.Load.Examples[kind])
		}
	}
}

// runCrashes runs three workers of the example server on one port, in the
// test's private network namespace, and kills one every second with
// rolling.Crash, for crashRun. With activated, the test process holds one
// socket per worker slot and hands it to each generation of that worker.
func runCrashes(t *testing.T, migrate string, activated bool) *rolling.Result {
	t.Helper()
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", migrate); err != nil {
		t.Fatal(err)
	}
	const workers = 3
	dir := t.TempDir()

	var (
		addr    string
		sockets []*os.File // per worker slot, when activated
	)
	if activated {
		for range workers {
			a := addr
			if a == "" {
				a = "127.0.0.1:0"
			}
			ln, err := reuseport.Listen("tcp", a)
			if err != nil {
				t.Fatal(err)
			}
			addr = ln.Addr().String()
			f, err := ln.(*net.TCPListener).File()
			ln.Close() // f holds the socket
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sockets = append(sockets, f)
		}
	} else {
		// Nobody else lives in this namespace, so the port cannot be
		// taken between this close and the workers' binds.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
	}

	command := func(worker, gen int) *exec.Cmd {
		if !activated {
			return exec.Command(serverBin(), "-addr", addr, "-shutdown-timeout", "5s")
		}
		// A path per worker slot: a worker's successor is the next
		// generation of the same slot. Its predecessor is dead, so it
		// finds a stale path and takes the activated socket instead.
		return activatedCommand(sockets[worker], "http", "-addr", addr, "-shutdown-timeout", "5s", "-handoff", filepath.Join(dir, fmt.Sprintf("w%d.sock", worker)))
	}

	log := new(servercmdtest.Log)
	ctx, cancel := context.WithTimeout(t.Context(), crashRun+time.Minute)
	defer cancel()
	res, err := rolling.Run(ctx, rolling.Config{
		Command:   command,
		ReadyLine: servercmdtest.ReadyLine,
		Workers:   workers,
		Interval:  time.Second,
		Mode:      rolling.Crash,
		Load:      loadgen.Config{Addr: addr, Clients: 64, Duration: crashRun},
		Log:       log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	t.Logf("tcp_migrate_req=%s, sockets held by the parent: %v: %v", migrate, activated, res)
	for kind, n := range res.Load.Failures {
		t.Logf("  %6d %s (first: %s)", n, kind, res.Load.Examples[kind])
	}
	if len(res.Problems) > 0 || res.Stuck > 0 {
		t.Errorf("servers misbehaved: %v\n%s", res, log)
	}
	if len(res.Restarts) < int(crashRun/time.Second)/2 {
		t.Errorf("only %d workers were replaced in %v", len(res.Restarts), crashRun)
	}
	if activated {
		// Every generation must have served the parent's socket: a
		// fresh one would join the group and hide what is measured.
		started := strings.Count(log.String(), servercmdtest.ReadyLine)
		if n := servercmdtest.Listened(log.String(), "activated"); n != started || n < workers {
			t.Errorf("%d of %d servers served an activated socket:\n%s", n, started, log)
		}
	}
	return res
}

// activatedCommand runs the example server with args and socket passed as
// systemd passes it: descriptor 3, LISTEN_FDS=1, LISTEN_PID the server's
// own pid, and LISTEN_FDNAMES=name unless name is empty.
func activatedCommand(socket *os.File, name string, args ...string) *exec.Cmd {
	// LISTEN_PID must be the server's own pid, known only once it runs:
	// the shell sets it to its own and execs the server.
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, serverBin()}, args...)...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	if name != "" {
		cmd.Env = append(cmd.Env, "LISTEN_FDNAMES="+name)
	}
	cmd.ExtraFiles = []*os.File{socket}
	return cmd
}

// TestCrashKeepsQueue parks connections in one worker's queue (the worker
// is stopped with SIGSTOP, so nothing it accepted is in flight), kills it
// with SIGKILL and starts a replacement. When the worker's socket is held
// by the parent and passed to each generation, every parked connection is
// served by the replacement. The control case, a worker that binds its own
// socket, loses every one of them to the crash.
func TestCrashKeepsQueue(t *testing.T) {
	if isolate(t, 0) {
		return
	}
	if err := nstest.SetSysctl("net/ipv4/tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	for _, held := range []bool{true, false} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			ln, err := reuseport.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			f, err := ln.(*net.TCPListener).File()
			ln.Close() // from here on only f, if anything, holds the socket
			if err != nil {
				t.Fatal(err)
			}
			if !held {
				f.Close() // nobody else lives in this namespace to take the port
				f = nil
			}
			path := filepath.Join(t.TempDir(), "w.sock")
			first := startWorker(t, addr, path, f)
			conns := park(t, first)
			first.Cmd.Process.Kill()
			<-first.Done
			second := startWorker(t, addr, path, f)
			served, bySecond := answered(conns, second.PID)
			t.Logf("socket held by the parent: %v: %d of %d parked connections served after the crash (pid %d -> %d)", held, served, parked, first.PID, second.PID)
			if held && bySecond != parked {
				t.Errorf("the replacement served %d of the %d connections parked in the held socket's queue, want all", bySecond, parked)
			}
			if !held && served != 0 {
				t.Errorf("%d of %d connections parked in a killed worker's own socket were served; want none (the control case must show the loss)", served, parked)
			}
			if f != nil {
				f.Close()
			}
		})
	}
}

// park stops s with SIGSTOP and parks connections in its socket's queue,
// each with a request sent. They are closed at the end of the test.
func park(t *testing.T, s *servercmdtest.Proc) []net.Conn {
	t.Helper()
	if err := s.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// kill(2) returns before every thread has stopped: one still running
	// could accept a connection dialled below, which the SIGKILL would
	// then take with it.
	waitStopped(t, s.PID)
	var conns []net.Conn
	for range parked {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

// answered counts the connections answered with 200, and of those the
// ones answered by process pid.
func answered(conns []net.Conn, pid int) (ok, byPID int) {
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			ok++
			if loadgen.ParsePID(body) == pid {
				byPID++
			}
		}
	}
	return ok, byPID
}

// waitStopped waits until every thread of pid is stopped by a signal.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	var running []string
	for range 500 {
		running = running[:0]
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of pid %d: %v", pid, err)
		}
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if errors.Is(err, fs.ErrNotExist) {
				continue // the thread has exited since the glob
			}
			if err != nil {
				t.Fatal(err)
			}
			// The state follows the command name, which is in parentheses
			// and may itself hold any character.
			i := strings.LastIndexByte(string(b), ')')
			if f := strings.Fields(string(b[i+1:])); len(f) == 0 || (f[0] != "T" && f[0] != "t") {
				running = append(running, task)
			}
		}
		if len(running) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d: threads not stopped 5s after SIGSTOP: %v", pid, running)
}

// startWorker starts the example server with -handoff path. If socket is
// not nil it is passed as systemd would (descriptor 3, LISTEN_FDS=1,
// LISTEN_PID the server's pid) and the server must serve it.
func startWorker(t *testing.T, addr, path string, socket *os.File) *servercmdtest.Proc {
	t.Helper()
	args := []string{"-addr", addr, "-handoff", path, "-shutdown-timeout", "5s"}
	if socket == nil {
		return start(t, args...)
	}
	s := servercmdtest.Start(t, activatedCommand(socket, "", args...))
	if servercmdtest.Listened(s.Log.String(), "activated") == 0 {
		t.Fatalf("server did not serve the socket it was passed:\n%s", s.Log)
	}
	return s
}
