package reuseport_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/b93f8b21/reuseport"
	"golang.org/x/sys/unix"
)

// fdSlack is the growth in open descriptors a long loop may show without
// failing; a leak of one per iteration exceeds it hundreds of times over.
const fdSlack = 3

// TestNoFDLeak checks that sockets, made or failed, hold no descriptor
// once closed or refused.
func TestNoFDLeak(t *testing.T) {
	held, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldUDP, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer heldUDP.Close()

	ctx := context.Background()
	tests := []struct {
		name   string
		cycles int
		once   func() error // one cycle; its error is what the cycle expects
		want   error
	}{
		{"Listen and Close", 2000, func() error {
			ln, err := reuseport.Listen("tcp4", "127.0.0.1:0")
			if err == nil {
				err = ln.Close()
			}
			return err
		}, nil},
		{"ListenPacket and Close", 2000, func() error {
			pc, err := reuseport.ListenPacket("udp4", "127.0.0.1:0")
			if err == nil {
				err = pc.Close()
			}
			return err
		}, nil},
		{"ListenGroup and Close", 500, func() error {
			lns, err := reuseport.ListenGroup("tcp4", "127.0.0.1:0", 4)
			closeAll(lns)
			return err
		}, nil},
		{"Listen on a held port", 500, func() error {
			_, err := reuseport.Listen("tcp4", held.Addr().String())
			return err
		}, syscall.EADDRINUSE},
		{"ListenPacket on a held port", 500, func() error {
			_, err := reuseport.ListenPacket("udp4", heldUDP.LocalAddr().String())
			return err
		}, syscall.EADDRINUSE},
		{"ListenGroup failing midway", 500, func() error {
			var bound string
			lc := reuseport.ListenConfig{ListenConfig: net.ListenConfig{Control: failFrom(3, &bound)}}
			_, err := lc.ListenGroup(ctx, "tcp4", "127.0.0.1:0", 4)
			return err
		}, errRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.once(); !errors.Is(err, tc.want) {
				t.Fatalf("first cycle: got error %v, want %v", err, tc.want)
			}
			before := openFDs(t)
			for i := range tc.cycles {
				if err := tc.once(); !errors.Is(err, tc.want) {
					t.Fatalf("cycle %d: got error %v, want %v", i+1, err, tc.want)
				}
			}
			requireFDsWithin(t, before, fdSlack, strconv.Itoa(tc.cycles)+" cycles")
		})
	}
}

// TestCloseOnExec checks that no socket of the package leaks into a child
// process: each carries FD_CLOEXEC on the descriptor itself, as seen
// through SyscallConn (File would return a duplicate without it).
func TestCloseOnExec(t *testing.T) {
	ln, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := reuseport.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	lns, err := reuseport.ListenGroup("tcp", "127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(lns)
	d := net.Dialer{Control: reuseport.Control, LocalAddr: ln.Addr()}
	out, err := d.Dial("tcp", lns[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	for name, s := range map[string]any{
		"Listen": ln, "ListenPacket": pc, "ListenGroup[1]": lns[1], "Dial with Control": out,
	} {
		flags := fdFlags(t, s)
		if flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: descriptor flags %#x lack FD_CLOEXEC", name, flags)
		}
	}
}

func fdFlags(t *testing.T, s any) int {
	t.Helper()
	var flags int
	var ferr error
	control(t, s, func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) })
	if ferr != nil {
		t.Fatalf("fcntl F_GETFD: %v", ferr)
	}
	return flags
}

// control runs f on the descriptor of s, which must offer SyscallConn.
func control(t *testing.T, s any, f func(fd uintptr)) {
	t.Helper()
	sc, ok := s.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no SyscallConn", s)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(f); err != nil {
		t.Fatal(err)
	}
}

// TestListenGroupOutOfDescriptors checks that a group which fails midway
// for want of descriptors closes the sockets it made. The process's
// descriptor limit is lowered for the moment of the call so that exactly
// two sockets fit.
func TestListenGroupOutOfDescriptors(t *testing.T) {
	// Warm up what the first listen sets up once (the poller, the
	// capability probe), so that the sockets are the only new descriptors.
	lns, err := reuseport.ListenGroup("tcp4", "127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(lns)

	var bound string
	record := func(_, address string, _ syscall.RawConn) error {
		bound = address
		return nil
	}
	lc := reuseport.ListenConfig{ListenConfig: net.ListenConfig{Control: record}}

	before := openFDs(t)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(nthFreeFD(t, 3)) // two free numbers below it
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	lns, err = lc.ListenGroup(context.Background(), "tcp4", "127.0.0.1:0", 4)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); rerr != nil {
		t.Fatalf("restoring the descriptor limit: %v", rerr)
	}
	closeAll(lns)
	if !errors.Is(err, syscall.EMFILE) || lns != nil {
		t.Fatalf("got %d listeners and error %v; want none and EMFILE", len(lns), err)
	}
	if _, port, _ := net.SplitHostPort(bound); port == "" || port == "0" {
		t.Fatalf("the group failed before its second socket (last bind %q), not midway", bound)
	}
	requireNoNewFDs(t, before, "the group that ran out of descriptors")
	plain, err := net.Listen("tcp4", bound)
	if err != nil {
		t.Fatalf("the port of the failed group is still held: %v", err)
	}
	plain.Close()
}

// nthFreeFD returns the nth lowest descriptor number not in use, so that
// a limit of it lets n-1 more files open.
func nthFreeFD(t *testing.T, n int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	listed := make(map[int]bool, len(entries))
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatalf("odd entry %q in /proc/self/fd", e.Name())
		}
		listed[fd] = true
	}
	for fd := 0; ; fd++ {
		// The listing included its own descriptor, closed since.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); listed[fd] && err == nil {
			continue
		}
		if n--; n == 0 {
			return fd
		}
	}
}
