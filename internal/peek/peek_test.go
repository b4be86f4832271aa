package peek_test

import (
	"crypto/tls"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/internal/peek"
)

func TestPending(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skipf("Pending cannot look at sockets on %s", runtime.GOOS)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if peek.Pending(sc) {
		t.Fatal("Pending on a connection nothing was sent on")
	}
	c.Write([]byte("GET"))
	deadline := time.Now().Add(5 * time.Second)
	for !peek.Pending(sc) {
		if time.Now().After(deadline) {
			t.Fatal("Pending still false 5s after the client wrote")
		}
		time.Sleep(time.Millisecond)
	}
	// It looks through a wrapper, and reads nothing.
	if !peek.Pending(wrapped{sc}) {
		t.Error("Pending does not look through NetConn")
	}
	if !peek.Pending(tls.Server(sc, &tls.Config{})) {
		t.Error("Pending does not look under a *tls.Conn")
	}
	b := make([]byte, 3)
	if n, err := sc.Read(b); n != 3 || string(b) != "GET" {
		t.Fatalf("read %q, %v after peeking", b[:n], err)
	}
	if peek.Pending(sc) {
		t.Error("Pending after everything was read")
	}
}

type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }
