package bench_test

import (
	"context"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	libp2p "github.com/libp2p/go-reuseport"
	"github.com/valyala/tcplisten"
	"golang.org/x/sys/unix"

	"github.com/b93f8b21/reuseport"
)

// listenImpl is one way to open a TCP listener. shares says whether a second
// listener may bind the same port, which TestListenImpls checks so that the
// benchmark never times an implementation that quietly does not share.
type listenImpl struct {
	name   string
	shares bool
	listen func(addr string) (net.Listener, error)
}

// The baseline comes first: benchstat compares every column with the first.
var listenImpls = []listenImpl{
	{"net", false, func(addr string) (net.Listener, error) { return net.Listen("tcp4", addr) }},
	{"reuseport", true, func(addr string) (net.Listener, error) { return reuseport.Listen("tcp4", addr) }},
	{"minimal", true, listenMinimal},
	{"libp2p", true, func(addr string) (net.Listener, error) { return libp2p.Listen("tcp4", addr) }},
	{"tcplisten", true, func(addr string) (net.Listener, error) {
		cfg := tcplisten.Config{ReusePort: true}
		return cfg.NewListener("tcp4", addr)
	}},
}

// listenMinimal is the floor for any Go implementation on Linux: the
// standard library's listener (which already sets SO_REUSEADDR) plus the one
// setsockopt that SO_REUSEPORT needs, with no checks and no options.
func listenMinimal(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var opErr error
		if err := c.Control(func(fd uintptr) {
			opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return os.NewSyscallError("setsockopt SO_REUSEPORT", opErr)
	}}
	return lc.Listen(context.Background(), "tcp4", addr)
}

// BenchmarkListenClose times what a server pays to open and close one
// listener: socket, options, bind, listen, registration with the poller.
func BenchmarkListenClose(b *testing.B) {
	for _, impl := range listenImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				listenClose(b, impl)
			}
		})
	}
}

// BenchmarkListenClosePaired runs every implementation once per iteration,
// in rotating order, so that a busy moment on a shared machine slows all of
// them alike, and reports each one's median time per listener and its
// ratio to net.Listen's. Medians, because on a busy machine a few calls
// are preempted for milliseconds, and a mean would charge those to
// whichever implementation happened to be running.
func BenchmarkListenClosePaired(b *testing.B) {
	took := make([][]time.Duration, len(listenImpls))
	iter := 0
	for b.Loop() {
		for k := range listenImpls {
			j := (iter + k) % len(listenImpls)
			start := time.Now()
			listenClose(b, listenImpls[j])
			took[j] = append(took[j], time.Since(start))
		}
		iter++
	}
	b.StopTimer()
	base := medianDuration(took[0])
	for j, impl := range listenImpls {
		m := medianDuration(took[j])
		b.ReportMetric(float64(m.Nanoseconds()), impl.name+"-ns/op")
		if j > 0 {
			b.ReportMetric(float64(m)/float64(base), impl.name+"/net")
		}
	}
	b.ReportMetric(0, "ns/op") // the time of all five together says nothing
}

func medianDuration(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func listenClose(b *testing.B, impl listenImpl) {
	ln, err := impl.listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		b.Fatal(err)
	}
}

func TestListenImpls(t *testing.T) {
	for _, impl := range listenImpls {
		t.Run(impl.name, func(t *testing.T) {
			first, err := impl.listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			second, err := impl.listen(first.Addr().String())
			if impl.shares && err != nil {
				t.Fatalf("second listener on %v: %v", first.Addr(), err)
			}
			if !impl.shares {
				if err == nil {
					second.Close()
					t.Fatalf("second listener on %v succeeded; the baseline must not share ports", first.Addr())
				}
				return
			}
			defer second.Close()
			// Both must be live listeners, not merely bound sockets.
			for _, ln := range []net.Listener{first, second} {
				assertAccepts(t, ln)
			}
		})
	}
}

// assertAccepts checks that ln takes a connection. In a group of two the
// kernel hashes each connection to one listener, so it dials 32 times: the
// odds that every one goes to the other listener are 2^-32.
func assertAccepts(t *testing.T, ln net.Listener) {
	t.Helper()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	for range 32 {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%v accepted none of 32 connections", ln.Addr())
	}
}
