package quicsteer_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/quic-go/quic-go"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/integrations/internal/selfsigned"
	"github.com/b93f8b21/reuseport/integrations/quicsteer"
	"github.com/b93f8b21/reuseport/steer"
)

// A QUIC server whose socket is steered: it shares its port with any other
// copy started the same way, and a copy joining or leaving moves none of
// its connections.
func Example() {
	pc, err := reuseport.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	conn := pc.(*net.UDPConn)
	g, err := steer.NewGroup(steer.Config{})
	if err != nil {
		log.Fatal(err)
	}
	m, err := g.Join(conn)
	if err != nil {
		log.Fatal(err)
	}
	tr := quicsteer.NewTransport(conn, m)
	serverTLS, roots, err := selfsigned.New("example")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := tr.Listen(serverTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		c, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		str, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		io.Copy(str, str) // echo
		str.Close()
	}()

	// A client, on a connection of its own.
	clientTLS := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"example"}}
	c, err := quic.DialAddr(context.Background(), conn.LocalAddr().String(), clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	str, err := c.OpenStreamSync(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	str.Write([]byte("hello over a steered socket"))
	str.Close()
	b, err := io.ReadAll(str)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	c.CloseWithError(0, "")

	// Stopping: no new connections, finish those in progress (here none),
	// then leave the group and close.
	m.Drain()
	ln.Close()
	m.Leave()
	tr.Close()
	conn.Close()
	g.Close()
	// Output: hello over a steered socket
}
