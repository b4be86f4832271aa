package loadgen_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/loadgen"
)

// serve runs a raw TCP server on loopback that answers each connection with
// handle, until the test ends.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

func readRequest(c net.Conn) {
	buf := make([]byte, 1024)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.Read(buf)
}

// TestRunSeesEveryOutcome checks the harness reports success and each kind
// of failure it claims to detect, so a restart test reading 0 failures from
// it is reading a real zero.
func TestRunSeesEveryOutcome(t *testing.T) {
	closedAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name    string
		addr    string
		failure string
	}{
		{"ok", serve(t, func(c net.Conn) {
			defer c.Close()
			readRequest(c)
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\n\r\nhello from pid=%d\n", os.Getpid())
		}), ""},
		{"closed without response", serve(t, func(c net.Conn) {
			readRequest(c)
			c.Close()
		}), "read: eof before response"},
		{"reset", serve(t, func(c net.Conn) {
			readRequest(c)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}), "read: reset"},
		{"server error", serve(t, func(c net.Conn) {
			defer c.Close()
			readRequest(c)
			fmt.Fprint(c, "HTTP/1.0 503 Service Unavailable\r\n\r\n")
		}), "response: status HTTP/1.0 503 Service Unavailable"},
		{"nobody listening", closedAddr, "dial: refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: tt.addr, Clients: 4, Requests: 40, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests() != 40 {
				t.Fatalf("sent %d requests, want 40", r.Requests())
			}
			if tt.failure == "" {
				if r.Failed() != 0 {
					t.Fatalf("want no failures, got %s", r)
				}
				if got := r.PIDs()[os.Getpid()]; got != 40 {
					t.Fatalf("pid=%d named in %d responses, want 40", os.Getpid(), got)
				}
				return
			}
			if got := r.Failures[tt.failure]; got != 40 {
				t.Fatalf("want 40 failures of kind %q, got %s", tt.failure, r)
			}
		})
	}
}

func TestRunNeedsAnEnd(t *testing.T) {
	if _, err := loadgen.Run(context.Background(), loadgen.Config{Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("a run with neither Duration nor Requests was accepted")
	}
}

func TestTimeoutIsBounded(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		time.Sleep(3 * time.Second) // never answer within the timeout
		c.Close()
	})
	r, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Clients: 2, Requests: 2, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failures["read: timeout"] != 2 {
		t.Fatalf("want 2 read timeouts, got %s", r)
	}
	if r.Max() > time.Second {
		t.Fatalf("a 200ms timeout took %v", r.Max())
	}
}
