//go:build darwin || freebsd || linux

package handoff_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/emu"
	"golang.org/x/sys/unix"
)

// skipIfEmulatorLeaksRights skips a test that counts this process's
// descriptors after a peer sent more than the receiver's control buffer
// holds, when an emulator, not the code under test, leaves some of them
// open. qemu-user does: its recvmsg receives into a host buffer twice the
// size of the program's, passes on what fits and never closes the rest,
// where the kernel closes every descriptor that does not fit (MSG_CTRUNC).
// The reason carries what was measured here on a bare socketpair. On the
// hardware the binary was built for it never skips.
func skipIfEmulatorLeaksRights(t *testing.T) {
	t.Helper()
	kernel, emulated := emu.Detect()
	if !emulated {
		return
	}
	const sent, room = 200, 8
	received, leaked := truncatedRights(t, sent, room)
	if leaked == 0 {
		return // a fixed emulator: the test means something again
	}
	t.Skipf("runs under user-mode emulation (GOARCH=%s on a %s kernel), whose recvmsg leaks descriptors: "+
		"on a bare socketpair, %d sent to a buffer with room for %d gave %d and left %d more open in this process, "+
		"where the kernel closes them natively; so this test's descriptor count cannot tell a leak of handoff's from the emulator's",
		runtime.GOARCH, kernel, sent, room, received, leaked)
}

// truncatedRights sends n copies of a pipe descriptor over a socketpair,
// receives them with room for only room, closes those received, and counts
// the descriptors that are still open beyond those of before. It closes
// them too (they are copies of the pipe's read end), so that the probe
// itself leaves nothing behind.
func truncatedRights(t *testing.T, n, room int) (received, leaked int) {
	t.Helper()
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	before := pipeCopies(t, r)
	fds := make([]int, n)
	for i := range fds {
		fds[i] = int(r.Fd())
	}
	if err := unix.Sendmsg(sv[0], []byte{0}, unix.UnixRights(fds...), nil, 0); err != nil {
		t.Fatalf("sending %d descriptors: %v", n, err)
	}
	oob := make([]byte, unix.CmsgSpace(room*4))
	_, oobn, _, _, err := unix.Recvmsg(sv[1], make([]byte, 1), oob, 0)
	if err != nil {
		t.Fatalf("receiving descriptors: %v", err)
	}
	received = countRights(oob[:oobn]) // closes them
	for fd := range pipeCopies(t, r) {
		if !before[fd] {
			unix.Close(fd)
			leaked++
		}
	}
	return received, leaked
}

// pipeCopies returns the descriptors of this process open on the same pipe
// end as f, f's own included.
func pipeCopies(t *testing.T, f *os.File) map[int]bool {
	t.Helper()
	want, err := os.Readlink(filepath.Join("/proc/self/fd", strconv.Itoa(int(f.Fd()))))
	if err != nil {
		t.Fatalf("cannot see this process's descriptors: %v", err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[int]bool{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == want {
			fds[fd] = true
		}
	}
	return fds
}

// TestKernelClosesTruncatedRights checks what maxFDsPerRead relies on: the
// descriptors that do not fit the receiver's buffer are closed, not left
// in the receiving process. Under qemu-user they are left open, and the
// test says how many.
func TestKernelClosesTruncatedRights(t *testing.T) {
	const sent, room = 200, 8
	received, leaked := truncatedRights(t, sent, room)
	if kernel, emulated := emu.Detect(); emulated && leaked > 0 {
		t.Skipf("under user-mode emulation (GOARCH=%s on a %s kernel): %d descriptors sent to room for %d gave %d and left %d more open",
			runtime.GOARCH, kernel, sent, room, received, leaked)
	}
	if received != room || leaked != 0 {
		t.Fatalf("%d descriptors sent to room for %d: received %d, %d more left open; want %d and none", sent, room, received, leaked, room)
	}
}
