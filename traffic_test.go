package reuseport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// A group of sockets on one port is made either by ListenGroup or by
// separate calls, as independent servers would; tests try both.
const (
	byGroup    = "ListenGroup"
	bySeparate = "separate calls"
)

var groupModes = []string{byGroup, bySeparate}

// fairFloor is the share of an even split that every socket of a group
// must receive. Linux scales a hash of the 4-tuple onto the sockets of the
// group (reuseport_select_sock, net/core/sock_reuseport.c), which on
// loopback lands within a few percent of even (TestSpread logs the shares);
// a socket left out, or a group that is really several groups, falls far
// below it.
const fairFloor = 0.6

// listeners makes n stream sockets sharing one port, closed at cleanup.
func listeners(t *testing.T, mode, network, address string, n int) []net.Listener {
	t.Helper()
	var lns []net.Listener
	t.Cleanup(func() { closeAll(lns) })
	switch mode {
	case byGroup:
		g, err := reuseport.ListenGroup(network, address, n)
		if err != nil {
			t.Fatalf("ListenGroup(%q, %q, %d): %v", network, address, n, err)
		}
		lns = g
	case bySeparate:
		for range n {
			ln, err := reuseport.Listen(network, address)
			if err != nil {
				t.Fatalf("Listen(%q, %q) for socket %d of %d: %v", network, address, len(lns)+1, n, err)
			}
			lns = append(lns, ln)
			address = withPortOf(t, address, ln.Addr())
		}
	default:
		t.Fatalf("unknown group mode %q", mode)
	}
	addrs := make([]net.Addr, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr()
	}
	requireOnePort(t, addrs, n)
	return lns
}

// packetConns is listeners for datagram sockets.
func packetConns(t *testing.T, mode, network, address string, n int) []net.PacketConn {
	t.Helper()
	var pcs []net.PacketConn
	t.Cleanup(func() { closeAll(pcs) })
	switch mode {
	case byGroup:
		var lc reuseport.ListenConfig
		g, err := lc.ListenPacketGroup(context.Background(), network, address, n)
		if err != nil {
			t.Fatalf("ListenPacketGroup(%q, %q, %d): %v", network, address, n, err)
		}
		pcs = g
	case bySeparate:
		for range n {
			pc, err := reuseport.ListenPacket(network, address)
			if err != nil {
				t.Fatalf("ListenPacket(%q, %q) for socket %d of %d: %v", network, address, len(pcs)+1, n, err)
			}
			pcs = append(pcs, pc)
			address = withPortOf(t, address, pc.LocalAddr())
		}
	default:
		t.Fatalf("unknown group mode %q", mode)
	}
	addrs := make([]net.Addr, len(pcs))
	for i, pc := range pcs {
		addrs[i] = pc.LocalAddr()
	}
	requireOnePort(t, addrs, n)
	return pcs
}

func closeAll[S interface{ Close() error }](ss []S) {
	for _, s := range ss {
		s.Close()
	}
}

// withPortOf returns address with its port replaced by the one a has, so
// that later sockets join the port the kernel gave the first.
func withPortOf(t *testing.T, address string, a net.Addr) string {
	t.Helper()
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		t.Fatalf("splitting %q: %v", address, err)
	}
	return net.JoinHostPort(host, fmt.Sprint(port(t, a)))
}

func port(t *testing.T, a net.Addr) int {
	t.Helper()
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	t.Fatalf("address %v is a %T, not TCP or UDP", a, a)
	return 0
}

func requireOnePort(t *testing.T, addrs []net.Addr, n int) {
	t.Helper()
	if len(addrs) != n {
		t.Fatalf("got %d sockets, want %d", len(addrs), n)
	}
	for _, a := range addrs {
		if a.String() != addrs[0].String() || port(t, a) == 0 {
			t.Fatalf("sockets of one group are bound to different addresses: %v", addrs)
		}
	}
}

// tally counts, per socket of a group, the connections or datagrams it
// received.
type tally struct {
	counts []atomic.Int64
	total  atomic.Int64

	mu  sync.Mutex
	err error // the first unexpected error of a receiving goroutine
}

func newTally(n int) *tally { return &tally{counts: make([]atomic.Int64, n)} }

func (tl *tally) add(i int) {
	tl.counts[i].Add(1)
	tl.total.Add(1)
}

func (tl *tally) fail(err error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.err == nil {
		tl.err = err
	}
}

func (tl *tally) snapshot() []int64 {
	s := make([]int64, len(tl.counts))
	for i := range tl.counts {
		s[i] = tl.counts[i].Load()
	}
	return s
}

// settle waits until want items have arrived, or until within has passed,
// and returns how many did.
func (tl *tally) settle(want int64, within time.Duration) int64 {
	deadline := time.Now().Add(within)
	for tl.total.Load() < want && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	return tl.total.Load()
}

// await is settle for streams, where nothing may be lost: every
// connection a client saw established must be accepted.
func (tl *tally) await(t *testing.T, want int64) []int64 {
	t.Helper()
	if got := tl.settle(want, 10*time.Second); got != want {
		t.Fatalf("listeners accepted %d connections, clients made %d (per listener: %v)", got, want, tl.snapshot())
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.err != nil {
		t.Fatalf("accept: %v", tl.err)
	}
	return tl.snapshot()
}

// countAccepts accepts on every listener until it closes, closing each
// connection at once, and counts what each listener got.
func countAccepts(t *testing.T, lns []net.Listener) *tally {
	t.Helper()
	tl := newTally(len(lns))
	var wg sync.WaitGroup
	for i, ln := range lns {
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						tl.fail(err)
					}
					return
				}
				tl.add(i)
				c.Close()
			}
		})
	}
	t.Cleanup(func() {
		closeAll(lns)
		wg.Wait()
	})
	return tl
}

// datagram marks this test's datagrams, so that a stray one is not counted.
var datagram = []byte("reuseport test datagram")

// countDatagrams reads on every packet socket until it closes, and counts
// what each one got.
func countDatagrams(t *testing.T, pcs []net.PacketConn) *tally {
	t.Helper()
	tl := newTally(len(pcs))
	var wg sync.WaitGroup
	for i, pc := range pcs {
		wg.Go(func() {
			buf := make([]byte, 2*len(datagram))
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						tl.fail(err)
					}
					return
				}
				if bytes.Equal(buf[:n], datagram) {
					tl.add(i)
				}
			}
		})
	}
	t.Cleanup(func() {
		closeAll(pcs)
		wg.Wait()
	})
	return tl
}

// dialMany makes n connections to address, a few at a time, closing each
// once it is established, and fails the test if any dial fails.
func dialMany(t *testing.T, network, address string, n int) {
	t.Helper()
	const workers = 8
	var (
		failed   atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	d := net.Dialer{Timeout: 5 * time.Second}
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				c, err := d.Dial(network, address)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d dials to %s %s failed; the first: %v", f, n, network, address, firstErr.Load())
	}
}

// sendMany sends n datagrams to address, each from a new socket so that
// each has its own source port and so its own hash. It paces itself on
// what tl has counted, so that the receive queues do not overflow, and
// returns how many arrived.
func sendMany(t *testing.T, network, address string, n int, tl *tally) int64 {
	t.Helper()
	const batch = 64
	before := tl.total.Load()
	for i := range n {
		c, err := net.Dial(network, address)
		if err != nil {
			t.Fatalf("dialing %s %s for datagram %d: %v", network, address, i, err)
		}
		_, err = c.Write(datagram)
		c.Close()
		if err != nil {
			t.Fatalf("sending datagram %d to %s: %v", i, address, err)
		}
		if (i+1)%batch == 0 || i == n-1 {
			tl.settle(before+int64(i+1), 500*time.Millisecond)
		}
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.err != nil {
		t.Fatalf("read: %v", tl.err)
	}
	return tl.total.Load() - before
}

// requireFair fails unless every socket got at least fairFloor of an even
// split of the total.
func requireFair(t *testing.T, counts []int64) {
	t.Helper()
	var total int64
	for _, c := range counts {
		total += c
	}
	floor := fairFloor * float64(total) / float64(len(counts))
	for i, c := range counts {
		if float64(c) < floor {
			t.Errorf("socket %d of %d got %d of %d, under %.0f%% of an even share (%.0f); per socket: %v",
				i, len(counts), c, total, 100*fairFloor, floor, counts)
		}
	}
	t.Logf("spread of %d over %d sockets: %v", total, len(counts), counts)
}

// requireAll fails unless every socket got something.
func requireAll(t *testing.T, counts []int64) {
	t.Helper()
	for i, c := range counts {
		if c == 0 {
			t.Errorf("socket %d of %d got nothing; per socket: %v", i, len(counts), counts)
		}
	}
}

// requireBalance skips a test that needs the kernel to spread connections
// (or fails it where CI promises Linux, see package testenv).
func requireBalance(t *testing.T) {
	t.Helper()
	if c := reuseport.Capabilities(); !c.Balance {
		testenv.SkipOrFail(t, testenv.RequireNetns, "this OS does not balance connections across a group: %v", c)
	}
}

// requireShare skips a test that needs sockets to share a port (or fails
// it where CI promises Linux).
func requireShare(t *testing.T) {
	t.Helper()
	if c := reuseport.Capabilities(); !c.Share {
		testenv.SkipOrFail(t, testenv.RequireNetns, "this OS cannot share ports: %v", c)
	}
}

// requireIPv6 skips a test when ::1 cannot be used (or fails it where CI
// promises a host with IPv6 loopback).
func requireIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		testenv.SkipOrFail(t, testenv.RequireNetns, "IPv6 loopback ::1 is unavailable here: %v", err)
		return
	}
	ln.Close()
}
