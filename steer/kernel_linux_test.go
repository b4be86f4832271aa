package steer

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/emu"
	"golang.org/x/sys/unix"
)

// RequireSteering skips a test under user-mode emulation (qemu-user, as CI
// runs other CPUs) when the emulator does not pass SO_ATTACH_REUSEPORT_CBPF
// on; anywhere else the test runs and fails if the kernel refuses. It is
// exported for the tests of package steer_test too.
func RequireSteering(t *testing.T) {
	t.Helper()
	arch, emulated := emu.Detect()
	if !emulated {
		return
	}
	cs := bpfGroup(t, 1)
	err := attachProgram(cs[0], []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("emulated on %s: %v", arch, err)
	}
}

// bpfGroup binds n UDP sockets to one loopback port, in order.
func bpfGroup(t *testing.T, n int) []*net.UDPConn {
	t.Helper()
	var cs []*net.UDPConn
	addr := "127.0.0.1:0"
	for range n {
		pc, err := reuseport.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		cs = append(cs, pc.(*net.UDPConn))
		addr = pc.LocalAddr().String()
	}
	return cs
}

// landings sends payload from each of flows clients to the group and
// returns how many reached each socket.
func landings(t *testing.T, cs []*net.UDPConn, flows int, payload []byte) []int {
	t.Helper()
	got := make([]int, len(cs))
	for range flows {
		c, err := net.DialUDP("udp4", nil, cs[0].LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		c.Write(payload)
		c.Close()
	}
	buf := make([]byte, 64)
	for i, s := range cs {
		for {
			s.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, _, err := s.ReadFrom(buf); errors.Is(err, os.ErrDeadlineExceeded) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			got[i]++
		}
	}
	return got
}

// TestKernelFacts checks what the program relies on: without privilege a
// classic BPF program picks the socket by its index in bind order, sees
// the UDP payload (its length is the payload's), falls back to the hash
// for an index past the end, and picks index 0 when it loads past the end
// of the packet, which is why the program checks lengths first.
func TestKernelFacts(t *testing.T) {
	RequireSteering(t)
	const flows = 60
	ld := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	retA := ld(unix.BPF_RET|unix.BPF_A, 0)
	for _, tc := range []struct {
		name    string
		prog    []unix.SockFilter
		payload []byte
		want    func(got []int) bool
	}{
		{"return 2 picks the third socket bound", []unix.SockFilter{ld(unix.BPF_RET|unix.BPF_K, 2)}, []byte("x"),
			func(g []int) bool { return g[2] == flows }},
		{"the length is the UDP payload's", []unix.SockFilter{ld(unix.BPF_LD|unix.BPF_W|unix.BPF_LEN, 0), retA}, []byte("xy"),
			func(g []int) bool { return g[2] == flows }},
		{"the data starts at the UDP payload", []unix.SockFilter{ld(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, 1), retA}, []byte{9, 1, 9},
			func(g []int) bool { return g[1] == flows }},
		{"an index past the end falls back to the hash", []unix.SockFilter{ld(unix.BPF_RET|unix.BPF_K, 3)}, []byte("x"),
			func(g []int) bool { return g[0] > 0 && g[1] > 0 && g[2] > 0 }},
		{"a load past the end picks index 0", []unix.SockFilter{ld(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 100), ld(unix.BPF_RET|unix.BPF_K, 2)}, []byte("x"),
			func(g []int) bool { return g[0] == flows }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := bpfGroup(t, 3)
			if err := attachProgram(cs[1], tc.prog); err != nil {
				t.Fatal(err)
			}
			if got := landings(t, cs, flows, tc.payload); !tc.want(got) {
				t.Errorf("%d datagrams reached the sockets as %v", flows, got)
			}
		})
	}

	t.Run("the program stays when the socket that attached it closes", func(t *testing.T) {
		cs := bpfGroup(t, 3)
		if err := attachProgram(cs[0], []unix.SockFilter{ld(unix.BPF_RET|unix.BPF_K, 1)}); err != nil {
			t.Fatal(err)
		}
		cs[0].Close()
		// The last socket moved into slot 0; slot 1 is still the second.
		if got := landings(t, cs[1:], flows, []byte("x")); got[0] != flows {
			t.Errorf("%d datagrams reached the two sockets left as %v; want all on the second bound", flows, got)
		}
	})
}

// TestProgramLimits checks that the largest table fits in a program the
// kernel takes, and that a larger one is refused with an error.
func TestProgramLimits(t *testing.T) {
	RequireSteering(t)
	big := make(slotTable, maxMembers)
	for i := range big {
		big[i] = slotInfo{ID: uint32(i + 1), State: stAccepting}
	}
	prog, err := program(big, maxCIDLen, key{})
	if err != nil {
		t.Fatalf("program for %d members: %v", maxMembers, err)
	}
	t.Logf("%d members: %d instructions", maxMembers, len(prog))
	cs := bpfGroup(t, 1)
	if err := attachProgram(cs[0], prog); err != nil {
		t.Fatalf("attaching the program for %d members: %v", maxMembers, err)
	}
	if _, err := program(append(big, slotInfo{ID: 0xabcdef, State: stAccepting}), defaultCIDLen, key{}); err == nil {
		t.Errorf("program for %d members: no error", maxMembers+1)
	}
}

// TestProberIgnoresSpoofedReplies checks that a prober takes only a reply
// that echoes its nonce, for a slot it asked, from the group's address.
func TestProberIgnoresSpoofedReplies(t *testing.T) {
	loopback := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", loopback)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	target, other, pc := listen(), listen(), listen()
	p := &prober{conn: pc, nonce: 1234, answers: map[uint32]answer{}}
	const genuine = 0x11111111
	go func() {
		buf := make([]byte, 64)
		for range 2 {
			n, from, err := target.ReadFrom(buf)
			if err != nil {
				return
			}
			q, err := parseControl(buf[:n])
			if err != nil {
				t.Errorf("the prober sent %x: %v", buf[:n], err)
				return
			}
			reply := func(slot uint32, nonce uint64, id uint32) []byte {
				return probeMsg{kind: kindReply, slot: slot, nonce: nonce, id: id, state: stAccepting, cidLen: defaultCIDLen}.marshal()
			}
			target.WriteTo(reply(q.slot, q.nonce+1, 0x22222222), from)                              // wrong nonce
			other.WriteTo(reply(q.slot, q.nonce, 0x33333333), from)                                 // not from the group
			target.WriteTo(reply(9, q.nonce, 0x44444444), from)                                     // a slot not asked
			target.WriteTo(reply(q.slot, q.nonce, 0x55555555)[:20], from)                           // truncated
			target.WriteTo(probeMsg{kind: kindProbe, slot: q.slot, nonce: q.nonce}.marshal(), from) // not a reply
			if q.slot == 0 {
				target.WriteTo(reply(0, q.nonce, genuine), from)
			}
		}
	}()
	if err := p.round(target.LocalAddr().(*net.UDPAddr), 2, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	want := map[uint32]answer{0: {genuine, stAccepting, defaultCIDLen, 0}}
	if len(p.answers) != 1 || p.answers[0] != want[0] {
		t.Errorf("the prober took %v; want only %v", p.answers, want)
	}
}
