//go:build darwin || freebsd || linux

package handoff_test

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const step = 20 * time.Second // generous bound for one step of a helper process

func startServer(t *testing.T, path, listen string, env ...string) *proc {
	t.Helper()
	return startProc(t, "server", append([]string{envPath + "=" + path, envListen + "=" + listen}, env...)...)
}

func wantSocketOrigins(t *testing.T, e event, want string) {
	t.Helper()
	if len(e.Sockets) == 0 {
		t.Fatalf("pid %d has no sockets", e.Pid)
	}
	for _, s := range e.Sockets {
		if s.Origin != want {
			t.Fatalf("pid %d: sockets %v, want all %s", e.Pid, e.Sockets, want)
		}
	}
}

// TestProcessHandoff hands a TCP and a UDP socket between two processes
// while a connection and datagrams wait in them: the successor answers
// all of them, and the predecessor exits cleanly once it is told to stop.
func TestProcessHandoff(t *testing.T) {
	path := sockPath(t)
	pred := startServer(t, path, "tcp 127.0.0.1:0;udp 127.0.0.1:0")
	e := pred.expect("started", step)
	wantSocketOrigins(t, e, "fresh")
	tcpAddr, udpAddr := e.Sockets[0].Addr, e.Sockets[1].Addr
	pred.send("ready") // but never serve: everything stays queued
	pred.expect("ready", step)

	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	udp, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	const datagrams = 50
	for i := range datagrams {
		if _, err := udp.Write([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	succ := startServer(t, path, "tcp 127.0.0.1:0;udp 127.0.0.1:0")
	e = succ.expect("started", step)
	wantSocketOrigins(t, e, "inherited")
	if e.Sockets[0].Addr != tcpAddr || e.Sockets[1].Addr != udpAddr {
		t.Fatalf("successor sockets %v, want %s and %s", e.Sockets, tcpAddr, udpAddr)
	}
	succ.readyAndServe()
	pred.expect("done", step)
	if code := pred.wait(step); code != 0 {
		t.Fatalf("predecessor exit code %d", code)
	}

	conn.SetDeadline(time.Now().Add(step))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("the queued connection: %v", err)
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(line)); pid != succ.pid() {
		t.Fatalf("queued connection answered by %q, want the successor %d", line, succ.pid())
	}
	udp.SetDeadline(time.Now().Add(step))
	buf := make([]byte, 64)
	for i := range datagrams {
		n, err := udp.Read(buf)
		if err != nil {
			t.Fatalf("answer %d of %d to queued datagrams: %v", i, datagrams, err)
		}
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n]))); pid != succ.pid() {
			t.Fatalf("datagram answered by %q, want the successor %d", buf[:n], succ.pid())
		}
	}
	if pid := askPID(t, "tcp", tcpAddr); pid != succ.pid() {
		t.Fatalf("new connection answered by %d, want %d", pid, succ.pid())
	}
}

// TestRacingSuccessors starts two successors at once. The lock makes them
// take turns: the first takes over from the predecessor, the second from
// the first, and every process ends cleanly.
func TestRacingSuccessors(t *testing.T) {
	path := sockPath(t)
	pred := startServer(t, path, "tcp 127.0.0.1:0")
	addr := pred.expect("started", step).Sockets[0].Addr
	pred.readyAndServe()

	a := startServer(t, path, "tcp 127.0.0.1:0")
	b := startServer(t, path, "tcp 127.0.0.1:0")
	var first, second *proc
	var e event
	select {
	case e = <-a.events:
		first, second = a, b
	case e = <-b.events:
		first, second = b, a
	case <-time.After(step):
		t.Fatal("neither successor started")
	}
	if e.Ev != "started" {
		t.Fatalf("first successor reported %+v", e)
	}
	wantSocketOrigins(t, e, "inherited")
	// The second waits for the lock while the first has not called Ready.
	select {
	case e := <-second.events:
		t.Fatalf("second successor went ahead while the first held the lock: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	first.readyAndServe()
	pred.expect("done", step)
	if code := pred.wait(step); code != 0 {
		t.Fatalf("predecessor exit code %d", code)
	}

	e = second.expect("started", step)
	wantSocketOrigins(t, e, "inherited")
	if e.Sockets[0].Addr != addr {
		t.Fatalf("second successor got %s, want %s", e.Sockets[0].Addr, addr)
	}
	second.readyAndServe()
	first.expect("done", step)
	if code := first.wait(step); code != 0 {
		t.Fatalf("first successor exit code %d", code)
	}
	if pid := askPID(t, "tcp", addr); pid != second.pid() {
		t.Fatalf("answered by %d, want the second successor %d", pid, second.pid())
	}
}

// TestPredecessorFails makes the predecessor die or stall in the middle of
// an exchange. The successor must start anyway, without error, with fresh
// sockets that serve the same port (or, when the predecessor dies after
// sending them, with the sockets it received).
func TestPredecessorFails(t *testing.T) {
	for _, tc := range []struct {
		hook, origin string
		exit         int // of the predecessor; -1: still running
	}{
		{"hello=exit", "fresh", 7},
		{"hello=stall", "fresh", -1},
		{"offered=exit", "inherited", 7},
	} {
		t.Run(tc.hook, func(t *testing.T) {
			path := sockPath(t)
			pred := startServer(t, path, "tcp 127.0.0.1:0", envHook+"="+tc.hook)
			addr := pred.expect("started", step).Sockets[0].Addr
			pred.readyAndServe()

			begin := time.Now()
			succ := startServer(t, path, "tcp "+addr, envTimeout+"=1s")
			e := succ.expect("started", step)
			wantSocketOrigins(t, e, tc.origin)
			if tc.exit < 0 && time.Since(begin) < time.Second {
				t.Fatalf("the successor gave up on a stalled predecessor after %v, before its 1s timeout", time.Since(begin))
			}
			succ.readyAndServe()
			if tc.exit >= 0 {
				if code := pred.wait(step); code != tc.exit {
					t.Fatalf("predecessor exit code %d, want %d (the hook did not run)", code, tc.exit)
				}
				if pid := askPID(t, "tcp", addr); pid != succ.pid() {
					t.Fatalf("answered by %d, want the successor %d", pid, succ.pid())
				}
			} else {
				// Both serve the port: nothing told the stalled one to stop.
				seen := map[int]bool{}
				for range 50 {
					seen[askPID(t, "tcp", addr)] = true
				}
				if !seen[succ.pid()] {
					t.Fatalf("the successor never answered: %v", seen)
				}
			}
			// The successor answers on Path: a further successor takes over.
			next := startServer(t, path, "tcp "+addr)
			wantSocketOrigins(t, next.expect("started", step), "inherited")
			next.readyAndServe()
			succ.expect("done", step)
		})
	}
}

// TestVersionMismatch starts a successor that speaks only a future
// protocol version: the predecessor refuses it cleanly and keeps serving,
// and the successor starts with fresh sockets on the same port.
func TestVersionMismatch(t *testing.T) {
	path := sockPath(t)
	pred := startServer(t, path, "tcp 127.0.0.1:0")
	addr := pred.expect("started", step).Sockets[0].Addr
	pred.readyAndServe()

	succ := startServer(t, path, "tcp "+addr, envVersion+"=2-3")
	wantSocketOrigins(t, succ.expect("started", step), "fresh")
	succ.readyAndServe()
	if !strings.Contains(succ.stderr.String(), "refused") || !strings.Contains(pred.stderr.String(), "protocol versions 1 to 1, not 2 to 3") {
		t.Errorf("no log of the refusal:\npredecessor:\n%s\nsuccessor:\n%s", pred.stderr.String(), succ.stderr.String())
	}
	select {
	case e := <-pred.events:
		t.Fatalf("the predecessor reported %+v after refusing", e)
	case <-pred.exited:
		t.Fatal("the predecessor exited")
	default:
	}
	seen := map[int]bool{}
	for range 50 {
		seen[askPID(t, "tcp", addr)] = true
	}
	// Both serve the port, in one reuseport group.
	if !seen[pred.pid()] || !seen[succ.pid()] {
		t.Fatalf("answers from %v, want both %d and %d", seen, pred.pid(), succ.pid())
	}
}

// TestStalePath starts over a socket file left by a process that died: it
// is a first start. A Path that is not a socket is never replaced.
func TestStalePath(t *testing.T) {
	path := sockPath(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	log := newLog(t, "stale")
	h := start(t, path, log)
	listen(t, h, "tcp", "127.0.0.1:0")
	wantOrigins(t, h, "fresh")
	ready(t, h)
	if !log.contains("nothing answers on") {
		t.Error("no log line about the stale socket")
	}
	// Path answers now: a successor takes over.
	s := start(t, path, newLog(t, "succ"))
	listen(t, s, "tcp", "127.0.0.1:0")
	wantOrigins(t, s, "inherited")
	ready(t, s)
	waitDone(t, h)

	notSock := sockPath(t)
	if err := os.WriteFile(notSock, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := startErr(notSock); err == nil {
		t.Fatal("Start accepted a Path that is a regular file")
	}
	if b, err := os.ReadFile(notSock); err != nil || string(b) != "precious" {
		t.Fatalf("the regular file at Path was changed: %q, %v", b, err)
	}
}
