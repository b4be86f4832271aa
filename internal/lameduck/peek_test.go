package lameduck

import (
	"crypto/tls"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestPending(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skipf("Pending cannot look at sockets on %s", runtime.GOOS)
	}
	c, sc := tcpPair(t, nil)
	if pending(sc) {
		t.Fatal("Pending on a connection nothing was sent on")
	}
	c.Write([]byte("GET"))
	deadline := time.Now().Add(5 * time.Second)
	for !pending(sc) {
		if time.Now().After(deadline) {
			t.Fatal("Pending still false 5s after the client wrote")
		}
		time.Sleep(time.Millisecond)
	}
	// It looks through a wrapper, and reads nothing.
	if !pending(wrapped{sc}) {
		t.Error("Pending does not look through NetConn")
	}
	if !pending(tls.Server(sc, &tls.Config{})) {
		t.Error("Pending does not look under a *tls.Conn")
	}
	b := make([]byte, 3)
	if n, err := sc.Read(b); n != 3 || string(b) != "GET" {
		t.Fatalf("read %q, %v after peeking", b[:n], err)
	}
	if pending(sc) {
		t.Error("Pending after everything was read")
	}
}

type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// tcpPair returns both ends of a TCP connection on loopback, closed when
// the test ends. The server's end is accepted through wrap(listener) if
// wrap is not nil.
func tcpPair(t *testing.T, wrap func(net.Listener) net.Listener) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	if server == nil {
		t.Fatal("Accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
