package quicsteer

import (
	"context"
	"errors"
	"net"

	"github.com/quic-go/quic-go"

	"github.com/b93f8b21/reuseport/steer"
)

// NewTransport returns a transport on conn, the socket m was joined with,
// whose server-chosen connection IDs carry m's id, so that the group's
// program steers every packet of a connection to conn. It also starts a
// goroutine that answers the group's probes arriving on conn; the
// goroutine ends when the transport is closed.
//
// The transport is in use from the start (the goroutine reads from it), so
// its other fields must not be set afterwards: for a transport with a
// Tracer, a StatelessResetKey or other settings, fill it in and call
// [Attach] instead.
func NewTransport(conn *net.UDPConn, m *steer.Member) *quic.Transport {
	tr := &quic.Transport{Conn: conn}
	if err := Attach(tr, m); err != nil {
		panic(err) // unreachable: tr is new
	}
	return tr
}

// Attach makes tr, not yet used, the transport of member m: it sets its
// ConnectionIDGenerator so that the server-chosen connection IDs carry m's
// id, and starts the goroutine that answers the group's probes on it until
// the transport is closed. tr.Conn must be the socket m was joined with,
// and every other field must be set before Attach, which uses tr.
//
// Attach reports an error, and changes nothing, if tr has no Conn or
// already has a ConnectionIDGenerator.
func Attach(tr *quic.Transport, m *steer.Member) error {
	switch {
	case tr.Conn == nil:
		return errors.New("quicsteer: the transport has no Conn")
	case tr.ConnectionIDGenerator != nil:
		return errors.New("quicsteer: the transport already has a ConnectionIDGenerator")
	}
	tr.ConnectionIDGenerator = generator{m}
	go answerProbes(tr, m)
	return nil
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
	return quic.ConnectionIDFromBytes(g.m.NewConnectionID()), nil
}

func (g generator) ConnectionIDLen() int { return g.m.CIDLen() }
