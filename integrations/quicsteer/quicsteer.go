package quicsteer

import (
	"context"
	"net"

	"github.com/quic-go/quic-go"

	"github.com/b93f8b21/reuseport/steer"
)

// NewTransport returns a transport on conn, which m is the member for,
// whose server-chosen connection IDs carry m's id, so that the group's
// program steers every packet of a connection to conn. It also starts a
// goroutine that answers the group's probes arriving on conn; the
// goroutine ends when the transport is closed.
//
// The caller may set the transport's other fields before first using it;
// Conn and ConnectionIDGenerator must stay as they are.
func NewTransport(m *steer.Member, conn *net.UDPConn) *quic.Transport {
	tr := &quic.Transport{Conn: conn, ConnectionIDGenerator: generator{m}}
	go answerProbes(tr, m)
	return tr
}

// answerProbes reads the packets quic-go does not take as QUIC (those whose
// first byte has its two top bits clear, as a probe's has) and answers the
// probes among them, until the transport is closed.
func answerProbes(tr *quic.Transport, m *steer.Member) {
	// A probe is a few dozen bytes; anything larger is not one, and
	// ReadNonQUICPacket truncates it harmlessly.
	b := make([]byte, 1500)
	for {
		n, from, err := tr.ReadNonQUICPacket(context.Background(), b)
		if err != nil {
			return // the transport is closed
		}
		m.HandleControl(b[:n], from, tr.WriteTo)
	}
}

// generator makes quic-go choose connection IDs that carry the member's id.
type generator struct{ m *steer.Member }

var _ quic.ConnectionIDGenerator = generator{}

func (g generator) GenerateConnectionID() (quic.ConnectionID, error) {
	b, err := g.m.NewConnectionID()
	if err != nil {
		return quic.ConnectionID{}, err
	}
	return quic.ConnectionIDFromBytes(b), nil
}

func (g generator) ConnectionIDLen() int { return g.m.CIDLen() }
