//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd

// The examples run where sockets can share a port; elsewhere every call
// fails with errors.ErrUnsupported.

package reuseport_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/b93f8b21/reuseport"
)

// Two servers bind one port. Here both are in one process; run a program
// that calls Listen twice, and the two copies share the port the same way.
func ExampleListen() {
	first, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer first.Close()

	second, err := reuseport.Listen("tcp", first.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close()

	fmt.Println("both listeners share port:", first.Addr().String() == second.Addr().String())
	// Output: both listeners share port: true
}

// Each datagram goes to one socket of the group, whichever the kernel
// picks for its sender.
func ExampleListenPacket() {
	first, err := reuseport.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer first.Close()
	second, err := reuseport.ListenPacket("udp", first.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close()

	received := make(chan string, 2)
	for _, pc := range []net.PacketConn{first, second} {
		go func() {
			buf := make([]byte, 64)
			n, _, err := pc.ReadFrom(buf)
			if err == nil {
				received <- string(buf[:n])
			}
		}()
	}

	client, err := net.Dial("udp", first.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	select {
	case msg := <-received:
		fmt.Println("one of the sockets received:", msg)
	case <-time.After(5 * time.Second):
		fmt.Println("nothing received")
	}
	// Output: one of the sockets received: hello
}

// One accept loop per listener, each an ordinary http.Server: the kernel
// spreads new connections over them with no lock between the loops.
func ExampleListenGroup() {
	lns, err := reuseport.ListenGroup("tcp", "127.0.0.1:0", 4)
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from a shared port\n")
	})
	for _, ln := range lns {
		srv := &http.Server{Handler: hello}
		go srv.Serve(ln)
		defer srv.Close()
	}

	resp, err := http.Get("http://" + lns[0].Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d listeners; got: %s", len(lns), body)
	// Output: 4 listeners; got: hello from a shared port
}

// The embedded net.ListenConfig carries the caller's own settings, here a
// keep-alive probe after 30 seconds of silence on accepted connections.
func ExampleListenConfig() {
	lc := reuseport.ListenConfig{
		ListenConfig: net.ListenConfig{
			KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	conn, err := ln.Accept()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("accepted a connection from", conn.RemoteAddr().(*net.TCPAddr).IP)
	// Output: accepted a connection from 127.0.0.1
}

// Control lets a client connect out from the port its listeners hold, as
// peer-to-peer hole punching does: the peer sees the listening address.
func ExampleControl() {
	ln, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer peer.Close()

	d := net.Dialer{Control: reuseport.Control, LocalAddr: ln.Addr()}
	conn, err := d.Dial("tcp", peer.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("dialed out from the listening port:", conn.LocalAddr().String() == ln.Addr().String())
	// Output: dialed out from the listening port: true
}
