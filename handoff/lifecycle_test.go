//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
	"golang.org/x/sys/unix"
)

// giveUpLimit is how much longer than its timeout a call that gives up may
// take before a test calls it stuck: far more than a busy machine adds, and
// far less than the minute that the timeouts a test does not mean to reach
// are set to.
const giveUpLimit = 20 * time.Second

func TestStartBadConfig(t *testing.T) {
	for name, cfg := range map[string]handoff.Config{
		"no path":          {},
		"negative timeout": {Path: sockPath(t), Timeout: -time.Second},
		"path too long":    {Path: "/tmp/" + strings.Repeat("x", 120)},
		"abstract socket":  {Path: "@handoff"},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := handoff.Start(context.Background(), cfg)
			if err == nil {
				h.Close()
				t.Fatal("Start accepted it")
			}
		})
	}
}

// TestSuccessorTimeout puts a process on Path that accepts and never
// answers: Start gives up after Config.Timeout, without error, and binds
// fresh sockets; Ready then takes Path over.
func TestSuccessorTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	path := sockPath(t)
	mute, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	mute.SetUnlinkOnClose(false)
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	log := newLog(t, "succ")
	begin := time.Now()
	s, err := handoff.Start(context.Background(), handoff.Config{Path: path, Timeout: timeout, Logger: log.logger()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Close()
	if d := time.Since(begin); d < timeout || d > timeout+giveUpLimit {
		t.Fatalf("Start took %v, want its Timeout of %v and not much more", d, timeout)
	}
	if !log.contains("binding fresh sockets") || !log.contains("timeout") {
		t.Error("no log line about the timeout")
	}
	listen(t, s, "tcp", "127.0.0.1:0")
	wantOrigins(t, s, "fresh")
	ready(t, s)
	// Path is the successor's now.
	next := start(t, path, newLog(t, "next"))
	listen(t, next, "tcp", "127.0.0.1:0")
	wantOrigins(t, next, "inherited")
	ready(t, next)
	waitDone(t, s)
}

// TestLockTimeout holds the lock as a slow successor would: Start waits at
// most Config.Timeout, or until ctx is done, and fails.
func TestLockTimeout(t *testing.T) {
	path := sockPath(t)
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	const timeout = 200 * time.Millisecond
	begin := time.Now()
	_, err = handoff.Start(context.Background(), handoff.Config{Path: path, Timeout: timeout})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Start: %v, want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(begin); d < timeout || d > timeout+giveUpLimit {
		t.Fatalf("Start waited %v for the lock, want its Timeout of %v and not much more", d, timeout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin = time.Now()
	_, err = handoff.Start(ctx, handoff.Config{Path: path, Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(begin); d > giveUpLimit {
		t.Fatalf("Start waited %v for the lock, with a context of 100ms and a Timeout of a minute", d)
	}
}

// TestAbandon closes a successor before Ready: the predecessor is not told
// to stop, keeps serving and answering on Path, and the successor's
// received descriptors are all closed.
func TestAbandon(t *testing.T) {
	path := sockPath(t)
	p := start(t, path, newLog(t, "pred"))
	ln := listen(t, p, "tcp", "127.0.0.1:0")
	listenPacket(t, p, "udp", "127.0.0.1:0")
	ready(t, p)

	fds := openFDs(t)
	s := start(t, path, newLog(t, "abandoned"))
	sln := listen(t, s, "tcp", "127.0.0.1:0") // claims one of two
	wantOrigins(t, s, "inherited")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sln.Close()
	settleFDs(t, fds)
	if isDone(p) {
		t.Fatal("Done closed for a successor that never became ready")
	}
	stillServing(t, ln)

	next := start(t, path, newLog(t, "next"))
	listen(t, next, "tcp", "127.0.0.1:0")
	listenPacket(t, next, "udp", "127.0.0.1:0")
	wantOrigins(t, next, "inherited", "inherited")
	ready(t, next)
	waitDone(t, p)
	if err := next.Ready(); err == nil {
		t.Fatal("second Ready succeeded")
	}
}

// TestUnclaimedClosedAtReady checks that sockets the successor does not
// ask for are closed at Ready, so that the port goes away with the
// predecessor, and that a listener the predecessor closed is not offered.
func TestUnclaimedClosedAtReady(t *testing.T) {
	path := sockPath(t)
	p := start(t, path, newLog(t, "pred"))
	keep := listen(t, p, "tcp", "127.0.0.1:0")
	drop := listen(t, p, "tcp", "127.0.0.1:0")
	gone := listen(t, p, "tcp", "127.0.0.1:0")
	udpAddr := listenPacket(t, p, "udp", "127.0.0.1:0").LocalAddr().String()
	ready(t, p)
	gone.Close()

	s := start(t, path, newLog(t, "succ"))
	listen(t, s, "tcp", keep.Addr().String())
	wantOrigins(t, s, "inherited")
	// A call of the wrong kind fails, without using up the socket.
	if _, err := s.Listen(context.Background(), "udp", udpAddr); err == nil {
		t.Fatal("Listen accepted udp")
	}
	listenPacket(t, s, "udp", udpAddr)
	wantOrigins(t, s, "inherited", "inherited")
	if _, err := s.Listen(context.Background(), "tcp", gone.Addr().String()); err != nil {
		t.Fatalf("fresh bind of the closed listener's address: %v", err)
	}
	wantOrigins(t, s, "inherited", "inherited", "fresh")
	ready(t, s)
	waitDone(t, p)
	keep.Close()
	drop.Close()
	if c, err := net.Dial("tcp", drop.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the unclaimed socket outlived Ready")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to the unclaimed socket's port: %v, want ECONNREFUSED", err)
	}
	if c, err := net.Dial("tcp", keep.Addr().String()); err != nil {
		t.Fatalf("the claimed socket: %v", err)
	} else {
		c.Close()
	}
}

// TestMatching checks, on real sockets, which inherited socket each Listen
// takes: by real local address, dual-stack for "tcp", by resolved name,
// port 0 for any port, and never an IPv6-only socket for "udp".
func TestMatching(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		testenv.SkipOrFail(t, testenv.RequireNetns, "no IPv6 loopback: %v", err)
	}
	probe.Close()
	path := sockPath(t)
	p := start(t, path, newLog(t, "pred"))
	wild := listen(t, p, "tcp", ":0") // [::]:port, dual-stack
	listen(t, p, "tcp4", "127.0.0.1:0")
	listenPacket(t, p, "udp6", "[::1]:0") // IPv6-only
	ready(t, p)
	_, port, _ := net.SplitHostPort(wild.Addr().String())
	if !strings.HasPrefix(wild.Addr().String(), "[::]:") {
		t.Fatalf("tcp :0 listens on %v, want [::]", wild.Addr())
	}

	s := start(t, path, newLog(t, "succ"))
	ln := listen(t, s, "tcp", "0.0.0.0:"+port)
	listen(t, s, "tcp", "localhost:0")
	listenPacket(t, s, "udp", "[::1]:0")
	listenPacket(t, s, "udp6", "[::1]:0")
	wantOrigins(t, s, "inherited", "inherited", "fresh", "inherited")
	if got := ln.Addr().String(); got != "[::]:"+port {
		t.Fatalf("tcp 0.0.0.0:%s took %s", port, got)
	}
	ready(t, s)
	// The dual-stack socket still takes IPv4.
	c, err := net.Dial("tcp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("IPv4 to the inherited dual-stack socket: %v", err)
	}
	c.Close()
}

// TestCloseWhileSuccessorStarts closes a serving process while a successor
// holds the lock and is about to rename its own socket over Path: Close
// must remove neither Path nor the successor's temporary socket. Once no
// successor is on its way, Close removes Path, which is still its own.
func TestCloseWhileSuccessorStarts(t *testing.T) {
	path := sockPath(t)
	p := start(t, path, newLog(t, "pred"))
	listen(t, p, "tcp", "127.0.0.1:0")
	ready(t, p)

	lock, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + ".new"} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("Close removed %s while a successor held the lock: %v", f, err)
		}
	}
	lock.Close()

	q := start(t, path, newLog(t, "next"))
	ready(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left its own Path: %v", err)
	}
}
