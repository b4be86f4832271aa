package reuseport_test

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"golang.org/x/sys/unix"
)

func getsockopt(t *testing.T, s any, level, opt int) int {
	t.Helper()
	var v int
	var err error
	control(t, s, func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), level, opt) })
	if err != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, err)
	}
	return v
}

// TestControlRunsLast checks that the caller's own Control runs, and sees
// the socket with this package's options already set: SO_REUSEPORT
// always, SO_REUSEADDR on TCP only (on UDP it would let another user's
// socket bind the port; see TestOtherUserCannotJoin).
func TestControlRunsLast(t *testing.T) {
	for _, tc := range []struct {
		network       string
		wantReuseAddr int
	}{
		{"tcp4", 1},
		{"tcp6", 1},
		{"udp4", 0},
		{"udp6", 0},
	} {
		t.Run(tc.network, func(t *testing.T) {
			address := "127.0.0.1:0"
			if tc.network[3] == '6' {
				requireIPv6(t)
				address = "[::1]:0"
			}
			var calls, reusePort, reuseAddr int
			var sockErr error
			look := func(network, address string, c syscall.RawConn) error {
				calls++
				if network != tc.network {
					t.Errorf("Control saw network %q, want %q", network, tc.network)
				}
				return c.Control(func(fd uintptr) {
					if reusePort, sockErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT); sockErr != nil {
						return
					}
					reuseAddr, sockErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR)
				})
			}
			lc := reuseport.ListenConfig{ListenConfig: net.ListenConfig{Control: look}}
			var err error
			if tc.network[:3] == "tcp" {
				var ln net.Listener
				ln, err = lc.Listen(context.Background(), tc.network, address)
				if err == nil {
					ln.Close()
				}
			} else {
				var pc net.PacketConn
				pc, err = lc.ListenPacket(context.Background(), tc.network, address)
				if err == nil {
					pc.Close()
				}
			}
			switch {
			case err != nil:
				t.Fatal(err)
			case calls != 1:
				t.Fatalf("the caller's Control ran %d times, want once", calls)
			case sockErr != nil:
				t.Fatal(sockErr)
			}
			if reusePort != 1 || reuseAddr != tc.wantReuseAddr {
				t.Errorf("the caller's Control saw SO_REUSEPORT=%d SO_REUSEADDR=%d, want 1 and %d", reusePort, reuseAddr, tc.wantReuseAddr)
			}
		})
	}
}

// TestKeepAlive checks that the keep-alive settings of the embedded
// net.ListenConfig still reach accepted connections.
func TestKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		lc                    net.ListenConfig
		enabled               int
		idle, interval, count int // 0: not checked
	}{
		{"default", net.ListenConfig{}, 1, 15, 15, 9},
		{"KeepAlive -1 disables", net.ListenConfig{KeepAlive: -1}, 0, 0, 0, 0},
		{"KeepAlive 45s", net.ListenConfig{KeepAlive: 45 * time.Second}, 1, 45, 15, 9},
		{"KeepAliveConfig", net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: 20 * time.Second, Interval: 7 * time.Second, Count: 3,
		}}, 1, 20, 7, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lc := reuseport.ListenConfig{ListenConfig: tc.lc}
			ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ac, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer ac.Close()

			if got := getsockopt(t, ac, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != tc.enabled {
				t.Errorf("SO_KEEPALIVE = %d, want %d", got, tc.enabled)
			}
			for _, o := range []struct {
				name      string
				opt, want int
			}{
				{"TCP_KEEPIDLE", unix.TCP_KEEPIDLE, tc.idle},
				{"TCP_KEEPINTVL", unix.TCP_KEEPINTVL, tc.interval},
				{"TCP_KEEPCNT", unix.TCP_KEEPCNT, tc.count},
			} {
				if o.want == 0 {
					continue
				}
				if got := getsockopt(t, ac, unix.IPPROTO_TCP, o.opt); got != o.want {
					t.Errorf("%s = %d, want %d", o.name, got, o.want)
				}
			}
		})
	}
}

// TestFastOpenQueue checks that FastOpenQueue reaches the listener as
// TCP_FASTOPEN, and that leaving it zero leaves Fast Open off.
func TestFastOpenQueue(t *testing.T) {
	for _, queue := range []int{0, 1, 16, 4096} {
		lc := reuseport.ListenConfig{FastOpenQueue: queue}
		ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("FastOpenQueue %d: %v", queue, err)
		}
		got := getsockopt(t, ln, unix.IPPROTO_TCP, unix.TCP_FASTOPEN)
		ln.Close()
		if got != queue {
			t.Errorf("FastOpenQueue %d: TCP_FASTOPEN = %d", queue, got)
		}
	}
}

// TestDeferAccept checks that DeferAccept reaches the listener as
// TCP_DEFER_ACCEPT. The kernel keeps the value as a count of SYN-ACK
// retransmissions (1s, 2s, 4s... apart) and reports their total time, so
// it reads back rounded up, to less than twice the request plus one.
func TestDeferAccept(t *testing.T) {
	for _, tc := range []struct {
		d        time.Duration
		wantSecs int // the seconds asked of the kernel; 0 means off
	}{
		{0, 0},
		{time.Second, 1},
		{1500 * time.Millisecond, 2}, // rounded up to whole seconds
		{5 * time.Second, 5},
		{time.Minute, 60},
	} {
		lc := reuseport.ListenConfig{DeferAccept: tc.d}
		ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("DeferAccept %v: %v", tc.d, err)
		}
		got := getsockopt(t, ln, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
		ln.Close()
		if tc.wantSecs == 0 && got != 0 || got < tc.wantSecs || got > 2*tc.wantSecs+1 {
			t.Errorf("DeferAccept %v: TCP_DEFER_ACCEPT reads back as %ds, want %ds rounded up by the kernel", tc.d, got, tc.wantSecs)
		}
	}
}

// TestCapabilitiesLinux checks that the probe finds what every Linux since
// 3.9 has.
func TestCapabilitiesLinux(t *testing.T) {
	c := reuseport.Capabilities()
	if !c.Share || !c.Balance || c.Err != nil {
		t.Errorf("Capabilities() = %+v, want Share and Balance without error", c)
	}
	if got, want := c.String(), "shares ports and balances connections"; got != want {
		t.Errorf("Capabilities().String() = %q, want %q", got, want)
	}
}
