package reuseport_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/b93f8b21/reuseport"
)

// Capabilities tells a server, at run time, whether running several
// copies on one port spreads the load; on macOS, for one, it would not.
func ExampleCapabilities() {
	c := reuseport.Capabilities()
	if !c.Share {
		log.Fatal(c.Err)
	}
	fmt.Println(c)
	// Output: shares ports and balances connections
}

// On Linux a listener can also take TCP Fast Open requests and let Accept
// wait until the client has sent its first bytes.
func ExampleListenConfig_tuning() {
	lc := reuseport.ListenConfig{FastOpenQueue: 256, DeferAccept: 5 * time.Second}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := io.WriteString(client, "ping"); err != nil {
		log.Fatal(err)
	}

	conn, err := ln.Accept()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("accepted; the client sent: %s\n", buf)
	// Output: accepted; the client sent: ping
}
