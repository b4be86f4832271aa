//go:build darwin || freebsd || linux

package handoff

import (
	"bytes"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/test/testenv"
	"golang.org/x/sys/unix"
)

// fuzzAddr stands for the address of the real socket FuzzReceive attaches:
// the target writes that address in its place, so that well-formed input
// can pass validation. Same length as any "127.0.0.1:" and five digits.
const fuzzAddr = "127.0.0.1:65535"

// FuzzReceive plays a predecessor that sends arbitrary bytes, split in two
// writes with nfds descriptors of a real UDP socket attached to the
// second, to the successor's receive. It must return an error or sockets
// that match what they claim, never panic, and leave no descriptor open
// once the sockets it returned are closed.
func FuzzReceive(f *testing.F) {
	fx := newReceiveFixture(f)
	for _, s := range receiveSeeds() {
		f.Add(s.data, s.nfds, s.split)
	}
	f.Fuzz(func(t *testing.T, data []byte, nfds uint8, split uint16) {
		fx.run(t, data, nfds, split)
	})
}

type receiveSeed struct {
	name  string
	data  []byte
	nfds  uint8
	split uint16
	ok    bool // receive succeeds
}

func receiveSeeds() []receiveSeed {
	offer1 := appendFrame(nil, msgOffer, offer{version: 1, pid: 1, count: 1}.append(nil))
	sock := appendFrame(nil, msgSocket, []byte("\x04udp4\x0f"+fuzzAddr))
	wrong := appendFrame(nil, msgSocket, []byte("\x04tcp4\x0f"+fuzzAddr))
	split := uint16(len(offer1))
	return []receiveSeed{
		{"one socket", append(offer1, sock...), 1, split, true},
		{"no descriptor", append(offer1, sock...), 0, split, false},
		{"two descriptors", append(offer1, sock...), 2, split, false},
		{"descriptor with the offer", append(offer1, sock...), 1, 1, true},
		{"declared tcp4", append(offer1, wrong...), 1, split, false},
		{"offer of two, one sent", append(appendFrame(nil, msgOffer, offer{version: 1, count: 2}.append(nil)), sock...), 1, 0, false},
		{"future version", append(appendFrame(nil, msgOffer, offer{version: 9, count: 1}.append(nil)), sock...), 1, 0, false},
		{"refusal", appendFrame(nil, msgRefuse, []byte("\x01no")), 0, 0, false},
		{"empty offer, stray descriptors", appendFrame(nil, msgOffer, offer{version: 1}.append(nil)), 3, 1, false},
		{"empty offer", appendFrame(nil, msgOffer, offer{version: 1}.append(nil)), 0, 0, true},
	}
}

// TestReceiveSeeds checks the seeds do what they are meant to, so that
// the fuzzer starts from both accepted and refused input.
func TestReceiveSeeds(t *testing.T) {
	fx := newReceiveFixture(t)
	for _, s := range receiveSeeds() {
		t.Run(s.name, func(t *testing.T) {
			if err := fx.run(t, s.data, s.nfds, s.split); (err == nil) != s.ok {
				t.Fatalf("receive: %v, want success %v", err, s.ok)
			}
		})
	}
}

type receiveFixture struct {
	addr string // of the UDP socket
	udp  int    // its descriptor
}

func newReceiveFixture(tb testing.TB) *receiveFixture {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	addr := pc.LocalAddr().String()
	if len(addr) != len(fuzzAddr) {
		tb.Skipf("UDP port of %s is not five digits", addr)
	}
	file, err := pc.(*net.UDPConn).File()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { file.Close() })
	return &receiveFixture{addr: addr, udp: int(file.Fd())}
}

func (fx *receiveFixture) run(t *testing.T, data []byte, nfds uint8, split uint16) error {
	if len(data) > 16<<10 {
		return nil // more than a socket buffer surely holds
	}
	data = bytes.ReplaceAll(data, []byte(fuzzAddr), []byte(fx.addr))
	before := testenv.MustOpenFDs(t)

	c, peer := fuzzPair(t, "successor")
	defer c.Close()
	k := int(split) % (len(data) + 1)
	if k > 0 {
		if _, err := unix.Write(peer, data[:k]); err != nil {
			t.Fatal(err)
		}
	}
	if rest := data[k:]; len(rest) > 0 {
		if err := unix.Sendmsg(peer, rest, rightsOf(fx.udp, int(nfds%4)), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	unix.Close(peer)

	c.SetDeadline(time.Now().Add(5 * time.Second))
	w, err := newWire(c)
	if err != nil {
		t.Fatal(err)
	}
	o, cands, err := receive(w, minVersion, maxVersion)
	if err == nil {
		if len(cands) != int(o.count) {
			t.Errorf("%d sockets for an offer of %d", len(cands), o.count)
		}
		for _, cand := range cands {
			if cand.info.String() != "udp4 "+fx.addr {
				t.Errorf("received %v, want udp4 %s", cand.info, fx.addr)
			}
		}
	}
	closeAll(cands)
	c.Close()
	if after := testenv.MustOpenFDs(t); after != before {
		t.Fatalf("%d descriptors open after receive, %d before (error %v)", after, before, err)
	}
	return err
}

// FuzzPredecessor sends arbitrary bytes, with nfds descriptors attached,
// to a predecessor's side of an exchange. It must never panic, never leave
// a descriptor open, and report a takeover only after a hello and a ready.
func FuzzPredecessor(f *testing.F) {
	hl := appendFrame(nil, msgHello, hello{minVersion: 1, maxVersion: 1, pid: 1}.append(nil))
	rd := appendFrame(nil, msgReady, nil)
	f.Add(append(hl, rd...), uint8(0))
	f.Add(hl, uint8(0))
	f.Add(append(hl, rd...), uint8(1))
	f.Add(appendFrame(nil, msgHello, hello{minVersion: 2, maxVersion: 9}.append(nil)), uint8(0))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint8(2))

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	h := &Handoff{cfg: Config{Timeout: time.Second}, log: logger(nil), minVersion: minVersion, maxVersion: maxVersion, done: make(chan struct{})}
	if err := h.track(pc, claimed{network: "udp4", addr: pc.LocalAddr()}); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, data []byte, nfds uint8) {
		if len(data) > 16<<10 {
			return
		}
		before := testenv.MustOpenFDs(t)
		c, peer := fuzzPair(t, "predecessor")
		if len(data) > 0 {
			if err := unix.Sendmsg(peer, data, rightsOf(peer, int(nfds%4)), nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		// The predecessor reads EOF after data, and may still write.
		unix.Shutdown(peer, unix.SHUT_WR)

		took := h.handOver(c)
		unix.Close(peer)
		if took && !bytes.HasPrefix(data, hl[:3+len(protocolMagic)]) {
			t.Fatalf("a takeover after %q", data)
		}
		if !took && nfds%4 == 0 && bytes.Equal(data, append(hl, rd...)) {
			t.Fatal("a valid hello and ready did not take over")
		}
		if after := testenv.MustOpenFDs(t); after != before {
			t.Fatalf("%d descriptors open after the exchange, %d before", after, before)
		}
	})
}

// fuzzPair returns the two ends of a new stream socketpair: one as the
// *net.UnixConn that handoff reads, named name, and the peer's as a raw
// descriptor through which a fuzz target sends its input, which the
// caller closes.
func fuzzPair(t *testing.T, name string) (*net.UnixConn, int) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.CloseOnExec(pair[0])
	unix.CloseOnExec(pair[1])
	f := os.NewFile(uintptr(pair[0]), name)
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(pair[1])
		t.Fatal(err)
	}
	return c.(*net.UnixConn), pair[1]
}

// rightsOf is an SCM_RIGHTS message of n copies of fd, or nil if n is 0.
func rightsOf(fd, n int) []byte {
	if n == 0 {
		return nil
	}
	return unix.UnixRights(slices.Repeat([]int{fd}, n)...)
}
