//go:build linux

package handoff_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// parked is how many established connections wait in the predecessor's
// accept queue when it is replaced.
const parked = 2000

// TestParkedQueueHandoff is the deterministic proof: a predecessor that
// never accepts holds `parked` established connections, each with a byte
// sent, in its accept queue; it hands its socket to a successor and exits.
// Every one of those connections must be answered by the successor, and
// none reset. tcp_migrate_req is 0, so the kernel migrates nothing: the
// queue survives only because the socket does.
func TestParkedQueueHandoff(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	setupNetns(t, "0")
	path := sockPath(t)
	pred := startServer(t, path, "tcp 127.0.0.1:0")
	addr := pred.expect("started", step).Sockets[0].Addr
	pred.send("ready") // and never accept
	pred.expect("ready", step)
	conns := park(t, addr, parked)

	succ := startServer(t, path, "tcp 127.0.0.1:0") // port 0 takes the inherited socket
	e := succ.expect("started", step)
	wantSocketOrigins(t, e, "inherited")
	if e.Sockets[0].Addr != addr {
		t.Fatalf("successor listens on %s, want %s", e.Sockets[0].Addr, addr)
	}
	succ.readyAndServe()
	pred.expect("done", step)
	if code := pred.wait(step); code != 0 {
		t.Fatalf("predecessor exit code %d", code)
	}

	r := collect(conns)
	t.Logf("handoff, tcp_migrate_req=0: %v (successor pid %d)", r, succ.pid())
	if r.resets != 0 || r.served[succ.pid()] != parked {
		t.Fatalf("%d parked connections: %v; want all answered by the successor %d, none reset", parked, r, succ.pid())
	}
}

// TestParkedQueueCloseControl is the control for TestParkedQueueHandoff:
// the same parked queue, but the predecessor simply exits while a fresh
// successor serves the port in the same reuseport group. With
// tcp_migrate_req=0 the kernel resets the parked connections, which shows
// the harness sees the loss the handoff prevents.
func TestParkedQueueCloseControl(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	r := parkAndClose(t, "0")
	if r.resets == 0 {
		t.Fatalf("%d parked connections: %v; the control saw no reset, so the harness cannot see loss", parked, r)
	}
}

// TestParkedQueueCloseMigrate is the control with tcp_migrate_req=1: on
// close(2) the kernel moves the queued connections to a sibling socket of
// the group. Parked (no SYN in flight), every connection is migrated and
// answered by the survivor; what it does not cover is a connection in the
// middle of its handshake at the instant of close, which rolling restarts
// still lose now and then (the restart table of docs/restarts.md, tcp_migrate_req 1). In
// the kernel, reuseport_migrate_sock (net/core/sock_reuseport.c) picks the
// sibling, for the accept queue from inet_csk_listen_stop and for requests
// still in their handshake only when their next packet arrives.
func TestParkedQueueCloseMigrate(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	r := parkAndClose(t, "1")
	if r.resets != 0 || r.total() != r.answered() {
		t.Fatalf("%d parked connections: %v; want all migrated and answered", parked, r)
	}
}

// parkAndClose parks connections in a predecessor's queue, starts a
// successor that binds its own socket in the same group (another Path: no
// handoff), and makes the predecessor exit.
func parkAndClose(t *testing.T, migrate string) result {
	setupNetns(t, migrate)
	pred := startServer(t, sockPath(t), "tcp 127.0.0.1:0")
	addr := pred.expect("started", step).Sockets[0].Addr
	pred.send("ready")
	pred.expect("ready", step)
	conns := park(t, addr, parked)

	succ := startServer(t, sockPath(t), "tcp "+addr)
	wantSocketOrigins(t, succ.expect("started", step), "fresh")
	succ.readyAndServe()
	pred.send("exit")
	if code := pred.wait(step); code != 0 {
		t.Fatalf("predecessor exit code %d", code)
	}
	r := collect(conns)
	t.Logf("plain close, tcp_migrate_req=%s: %v (successor pid %d)", migrate, r, succ.pid())
	return r
}

func setupNetns(t *testing.T, migrate string) {
	t.Helper()
	// Go sizes its listen backlog from somaxconn, read at the first listen.
	for name, value := range map[string]string{
		"net/core/somaxconn":           strconv.Itoa(2 * parked),
		"net/ipv4/tcp_migrate_req":     migrate,
		"net/ipv4/tcp_max_syn_backlog": strconv.Itoa(2 * parked),
	} {
		if err := nstest.SetSysctl(name, value); err != nil {
			t.Fatalf("sysctl %s: %v", name, err)
		}
	}
}

// park opens n connections to addr, sends one byte on each, and checks
// that all of them wait in the listener's accept queue.
func park(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", len(conns), n, err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	deadline := time.Now().Add(5 * time.Second)
	for q := acceptQueue(t, p); q != n; q = acceptQueue(t, p) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections in the accept queue of port %d, want %d", q, p, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return conns
}

// acceptQueue sums the accept queues of the TCP listeners on port, as
// /proc/net/tcp{,6} report them (rx_queue of a LISTEN socket).
func acceptQueue(t *testing.T, port int) int {
	t.Helper()
	total := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 5 || f[3] != "0A" { // TCP_LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
				continue
			}
			_, rx, _ := strings.Cut(f[4], ":")
			q, err := strconv.ParseUint(rx, 16, 32)
			if err != nil {
				t.Fatalf("%s: %q", file, line)
			}
			total += int(q)
		}
	}
	return total
}

// result counts what the parked connections saw.
type result struct {
	served   map[int]int // answers per server pid
	resets   int         // ECONNRESET
	eofs     int         // closed without an answer
	timeouts int
	other    []string
}

func (r result) answered() int {
	n := 0
	for _, v := range r.served {
		n += v
	}
	return n
}

func (r result) total() int { return r.answered() + r.resets + r.eofs + r.timeouts + len(r.other) }

func (r result) String() string {
	return fmt.Sprintf("answered %d %v, reset %d, EOF %d, timed out %d, other %d %.3q",
		r.answered(), r.served, r.resets, r.eofs, r.timeouts, len(r.other), r.other[:min(len(r.other), 3)])
}

// collect reads the answer on every connection.
func collect(conns []net.Conn) result {
	r := result{served: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(step)
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(deadline)
			line, err := bufio.NewReader(c).ReadString('\n')
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				pid, _ := strconv.Atoi(strings.TrimSpace(line))
				r.served[pid]++
			case errors.Is(err, syscall.ECONNRESET):
				r.resets++
			case errors.Is(err, io.EOF):
				r.eofs++
			case errors.Is(err, os.ErrDeadlineExceeded):
				r.timeouts++
			default:
				r.other = append(r.other, err.Error())
			}
		})
	}
	wg.Wait()
	return r
}
