package steer_test

import (
	"fmt"
	"log"
	"net"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/steer"
)

// One process's socket on a port that other copies of the server share.
// With quic-go, the connection IDs come from a quic.ConnectionIDGenerator
// that calls NewConnectionID, and the control packets from
// Transport.ReadNonQUICPacket.
func Example() {
	pc, err := reuseport.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	conn := pc.(*net.UDPConn)
	g := steer.NewGroup(steer.Config{})
	defer g.Close()

	// Join before anything reads conn.
	m, err := g.Join(conn)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if m.HandleControl(buf[:n], from, conn.WriteTo) {
				continue // a probe of the group, answered
			}
			// A QUIC packet: hand buf[:n] to the QUIC stack.
		}
	}()

	cid, err := m.NewConnectionID()
	if err != nil {
		log.Fatal(err)
	}
	id, _ := steer.IDOf(cid)
	fmt.Println(len(cid), id == m.ID())
	tab := g.Table()
	fmt.Println(len(tab), tab[0].State, tab[0].Mine)

	// To stop: take no new connections, let the established ones finish,
	// then leave and close.
	if err := m.Drain(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(g.Table()[0].State)
	if err := m.Leave(); err != nil {
		log.Fatal(err)
	}
	conn.Close()
	// Output:
	// 12 true
	// 1 accepting true
	// draining
}
