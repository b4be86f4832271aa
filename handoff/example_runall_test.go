//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

// A server with a UDP and a TCP socket on one port, restarted as one: a
// line-echo protocol on both, each TCP connection answered one line at a
// time (Sequential), and the process upgrading itself on SIGHUP, as
// `systemctl reload` asks under systemd.
func ExampleRunAll() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	// UDP: answer each datagram until Shutdown stops the loop with a read
	// deadline in the past (RunAll closes the socket itself afterwards).
	var mu sync.Mutex
	var udp net.PacketConn
	stopped := false
	echoUDP := handoff.PacketFuncs(func(pc net.PacketConn) error {
		mu.Lock()
		udp = pc
		mu.Unlock()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				if stopped {
					return nil // what Shutdown asked for
				}
				return err
			}
			pc.WriteTo(buf[:n], from)
		}
	}, func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if udp != nil {
			udp.SetReadDeadline(time.Unix(1, 0))
		}
		return nil
	})

	cfg := handoff.RunConfig{
		Config:        handoff.Config{Path: "/run/echo/handoff.sock"},
		UpgradeSignal: syscall.SIGHUP,
	}
	err := handoff.RunAll(ctx, cfg,
		handoff.Service{Network: "udp", Address: ":7007", PacketServer: echoUDP},
		handoff.Service{Network: "tcp", Address: ":7007", Server: newLineEcho(), Sequential: true},
	)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	fmt.Println("stopped")
}

// newLineEcho is any TCP server with Serve and Shutdown that answers one
// request at a time and reads nothing ahead; seqServer, in this package's
// tests, is one.
func newLineEcho() handoff.Server { return newSeqServer(1) }
