//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
	"golang.org/x/sys/unix"
)

// logSink collects log lines and forwards them to the test log. It fails
// the test on a line that does not name the package exactly once: the
// package prefixes its log lines, and errors made inside it do not.
type logSink struct {
	t     testing.TB
	name  string
	mu    sync.Mutex
	lines []string
}

func newLog(t testing.TB, name string) *logSink { return &logSink{t: t, name: name} }

// logger returns a Logger whose text records go to l.
func (l *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write takes one record: the text handler writes each in one call.
func (l *logSink) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.t.Logf("%s: %s", l.name, line)
	if n := strings.Count(line, "handoff:"); n != 1 {
		l.t.Errorf("%s: a log line names the package %d times, want once: %s", l.name, n, line)
	}
	return len(p), nil
}

// contains reports whether a line contains every one of ss.
func (l *logSink) contains(ss ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		all := true
		for _, s := range ss {
			all = all && strings.Contains(line, s)
		}
		if all {
			return true
		}
	}
	return false
}

func sockPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "h.sock")
}

func start(t testing.TB, path string, log *logSink) *handoff.Handoff {
	t.Helper()
	h, err := handoff.Start(context.Background(), handoff.Config{Path: path, Timeout: 2 * time.Second, Logger: log.logger()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// startErr returns what Start returns, closing the Handoff if any.
func startErr(path string) error {
	h, err := handoff.Start(context.Background(), handoff.Config{Path: path, Timeout: time.Second})
	if h != nil {
		h.Close()
	}
	return err
}

func listen(t testing.TB, h *handoff.Handoff, network, address string) net.Listener {
	t.Helper()
	ln, err := h.Listen(context.Background(), network, address)
	if err != nil {
		t.Fatalf("Listen(%q, %q): %v", network, address, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func listenPacket(t testing.TB, h *handoff.Handoff, network, address string) net.PacketConn {
	t.Helper()
	pc, err := h.ListenPacket(context.Background(), network, address)
	if err != nil {
		t.Fatalf("ListenPacket(%q, %q): %v", network, address, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func ready(t testing.TB, h *handoff.Handoff) {
	t.Helper()
	if err := h.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

func origins(h *handoff.Handoff) []string {
	var o []string
	for _, s := range handoff.Sockets(h) {
		o = append(o, s.Origin)
	}
	return o
}

func wantOrigins(t testing.TB, h *handoff.Handoff, want ...string) {
	t.Helper()
	got := origins(h)
	if len(got) != len(want) {
		t.Fatalf("origins %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("origins %v, want %v", got, want)
		}
	}
}

func isDone(h *handoff.Handoff) bool {
	select {
	case <-h.Done():
		return true
	default:
		return false
	}
}

func waitDone(t testing.TB, h *handoff.Handoff) {
	t.Helper()
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not close")
	}
}

// openFDs counts this process's open descriptors, once the count has held
// still for a moment: descriptors of earlier tests (pipes of processes
// being reaped) may still be closing.
func openFDs(t testing.TB) int {
	t.Helper()
	n := testenv.MustOpenFDs(t)
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := testenv.MustOpenFDs(t)
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// settleFDs waits, boundedly, for the descriptor count to come back to want
// (a predecessor finishes with a peer asynchronously) and fails if it does
// not. Fewer is fine: a descriptor of an earlier test may have closed.
func settleFDs(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := testenv.MustOpenFDs(t)
		if got <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, want %d:\n%s", got, want, listFDs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listFDs describes the open descriptors, for failure messages.
func listFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fmt.Fprintf(&b, "  %s -> %s\n", e.Name(), target)
	}
	return b.String()
}

func countRights(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	n := 0
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err == nil {
			n += len(fds)
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	return n
}

// TestFirstStart checks a process with no predecessor binds fresh sockets
// and, at Ready, answers on Path through a socket only its user may use,
// whatever the umask.
func TestFirstStart(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := sockPath(t)
	log := newLog(t, "first")
	h := start(t, path, log)
	ln := listen(t, h, "tcp", "127.0.0.1:0")
	wantOrigins(t, h, "fresh")
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Path exists before Ready: %v", err)
	}
	ready(t, h)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("Path is %v, want a socket with mode 0600", fi.Mode())
	}
	if fi, err := os.Stat(path + ".lock"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v; want mode 0600", fi, err)
	}
	if _, err := os.Lstat(path + ".new"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary socket left behind: %v", err)
	}
	if ln.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatal("no port")
	}
	if !log.contains("no predecessor") {
		t.Error("no log line about the missing predecessor")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Close left Path behind: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.Ready(); err == nil {
		t.Fatal("Ready after Close succeeded")
	}
	if _, err := h.Listen(context.Background(), "tcp", "127.0.0.1:0"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Listen after Close: %v, want net.ErrClosed", err)
	}
}

// TestHandoffInProcess hands a TCP and a UDP socket to a successor in the
// same process: the successor gets the very sockets (same ports, queued
// connection and datagrams) and the predecessor's Done closes only once
// the successor is ready.
func TestHandoffInProcess(t *testing.T) {
	path := sockPath(t)
	p := start(t, path, newLog(t, "pred"))
	pln := listen(t, p, "tcp", "127.0.0.1:0")
	ppc := listenPacket(t, p, "udp", "127.0.0.1:0")
	ready(t, p)

	// A connection and datagrams queued before the handoff, never read
	// by the predecessor.
	c, err := net.Dial("tcp", pln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := net.Dial("udp", ppc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, msg := range []string{"one", "two"} {
		if _, err := u.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}

	s := start(t, path, newLog(t, "succ"))
	sln := listen(t, s, "tcp", "127.0.0.1:0")
	spc := listenPacket(t, s, "udp", "127.0.0.1:0")
	wantOrigins(t, s, "inherited", "inherited")
	if sln.Addr().String() != pln.Addr().String() || spc.LocalAddr().String() != ppc.LocalAddr().String() {
		t.Fatalf("successor got %v and %v, want %v and %v", sln.Addr(), spc.LocalAddr(), pln.Addr(), ppc.LocalAddr())
	}
	if isDone(p) {
		t.Fatal("Done closed before the successor was ready")
	}
	ready(t, s)
	waitDone(t, p)

	sln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	ac, err := sln.Accept()
	if err != nil {
		t.Fatalf("the successor did not get the queued connection: %v", err)
	}
	if ac.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("accepted %v, want %v", ac.RemoteAddr(), c.LocalAddr())
	}
	ac.Close()
	spc.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	for _, want := range []string{"one", "two"} {
		n, _, err := spc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("successor read %q, %v; want %q", buf[:n], err, want)
		}
	}
	// The predecessor's copies may go: the successor's keep the sockets.
	pln.Close()
	ppc.Close()
	p.Close()
	if _, err := net.Dial("tcp", pln.Addr().String()); err != nil {
		t.Fatalf("the port closed with the predecessor's copy: %v", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("the predecessor's Close removed the successor's Path: %v", err)
	}
}
