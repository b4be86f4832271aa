package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/servercmd/servercmdtest"
)

// TestServeAndStop runs the command in this process: it answers a GET
// over HTTP/3 with its pid, and returns nil once its context is done.
func TestServeAndStop(t *testing.T) {
	for _, steer := range []bool{true, false} {
		t.Run(fmt.Sprintf("steer=%v", steer), func(t *testing.T) {
			pc, err := reuseport.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := pc.LocalAddr().(*net.UDPAddr)
			pc.Close()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := new(servercmdtest.Log)
			ran := make(chan error, 1)
			go func() {
				ran <- command.Run(ctx, []string{"-addr", addr.String(), fmt.Sprintf("-steer=%v", steer), "-shutdown-timeout", "5s"}, log, serve)
			}()
			var pid int
			for deadline := time.Now().Add(10 * time.Second); ; {
				if strings.Contains(log.String(), "listening on") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not serving after 10s:\n%s", log)
				}
				time.Sleep(10 * time.Millisecond)
			}
			c, err := dial(ctx, addr)
			if err == nil {
				pid, err = c.get(ctx, "https://"+addr.String()+"/")
				c.close()
			}
			if err != nil {
				t.Fatalf("GET: %v\n%s", err, log)
			}
			if pid != os.Getpid() {
				t.Errorf("answered by pid %d, want %d", pid, os.Getpid())
			}
			cancel()
			select {
			case err := <-ran:
				if err != nil {
					t.Errorf("run: %v\n%s", err, log)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("run did not return 10s after its context was done:\n%s", log)
			}
		})
	}
}
