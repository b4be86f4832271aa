package systest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/testenv"
	"golang.org/x/sys/unix"
)

// TestOutOfDescriptors runs a server process out of file descriptors while
// it serves: accept(2) fails with EMFILE and the connection that caused it
// stays in the kernel's queue. The server must keep running, back off
// instead of retrying at once (a retry cannot succeed until a descriptor is
// freed, so retrying in a loop only burns a core), and serve the waiting
// connection once descriptors are free again.
func TestOutOfDescriptors(t *testing.T) {
	if isolate(t, 0) {
		return
	}
	s := start(t, "-addr", "127.0.0.1:0", "-shutdown-timeout", "5s")

	// Leave the server a few descriptors above what it holds now; the
	// limit is lowered from outside, as an operator's ulimit or a
	// container's would be, while the server runs.
	const spare = 16
	limit := uint64(testenv.MustOpenFDsOf(t, s.PID) + spare)
	var old unix.Rlimit
	if err := unix.Prlimit(s.PID, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, &old); err != nil {
		t.Fatalf("prlimit(%d): %v", s.PID, err)
	}
	t.Logf("server pid=%d: RLIMIT_NOFILE %d (was %d), %d descriptors open", s.PID, limit, old.Cur, limit-spare)

	// Each held connection has had one keep-alive request answered, so the
	// server holds a descriptor for it until the client closes it. The
	// first connection whose request goes unanswered is the one the server
	// cannot accept.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var waiting net.Conn
	for range 2 * spare {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial with %d connections held: %v", len(held), err)
		}
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			waiting = c
			break
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %s", len(held), resp.Status)
		}
		held = append(held, c)
	}
	if waiting == nil {
		t.Fatalf("the server answered %d connections on %d spare descriptors; it never ran out", len(held), spare)
	}
	defer waiting.Close()
	// The limit bounds descriptor numbers, and a descriptor numbered
	// above it from before may remain: every number below it is taken.
	if n := testenv.MustOpenFDsOf(t, s.PID); uint64(n) < limit {
		t.Errorf("the server has %d descriptors open with its limit at %d; want it exhausted", n, limit)
	}

	// A server that retries accept(2) at once uses a whole core; one that
	// backs off wakes a few times a second. 20% leaves a wide margin both
	// ways: for a slow or loaded machine charging the server some
	// scheduler and garbage-collector time, and below the 100% a spin
	// costs even when it shares a core with other work.
	const window = time.Second
	cpu0, t0 := cpuTime(t, s.PID), time.Now()
	time.Sleep(window)
	cpu, wall := cpuTime(t, s.PID)-cpu0, time.Since(t0)
	t.Logf("out of descriptors, the server used %v of CPU in %v (%.1f%%)", cpu, wall.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds())
	if cpu > wall/5 {
		t.Errorf("out of descriptors, the server used %v of CPU in %v: it spins on accept instead of backing off", cpu, wall)
	}
	select {
	case <-s.Done:
		t.Fatalf("the server exited when it ran out of descriptors: %v\n%s", s.Err, s.Log)
	default:
	}
	if !strings.Contains(s.Log.String(), "too many open files") {
		t.Errorf("the server did not log why it cannot accept:\n%s", s.Log)
	}

	// Free the descriptors, with the limit left as it is: the connection
	// that waited in the queue all along is served, and so is a new one.
	for _, c := range held {
		c.Close()
	}
	held = nil
	waiting.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(waiting), nil)
	if err != nil {
		t.Fatalf("the connection that waited while descriptors ran out: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the connection that waited: %s", resp.Status)
	}
	if pids := get(t, s.Addr, 20); pids[s.PID] != 20 {
		t.Errorf("after descriptors were freed, 20 new requests were served by %v, want all by pid %d", pids, s.PID)
	}
}

// cpuTime is the user plus system time process pid has used, from
// /proc/PID/stat, whose times are in USER_HZ (100 per second on every Linux
// architecture; the value sysconf(_SC_CLK_TCK) reports).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fields) < 13 {
		t.Fatalf("cannot parse /proc/%d/stat: %q", pid, b)
	}
	// fields[0] is field 3 (state), so utime (14) and stime (15) are 11, 12.
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	const userHZ = 100
	return time.Duration(ticks) * time.Second / userHZ
}
