package quicsteer_test

import (
	"net"
	"strings"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/b93f8b21/reuseport/integrations/quicsteer"
)

// TestAttachRefusesAConfiguredTransport checks that Attach leaves alone a
// transport it cannot make a member's: one without a socket, or one that
// already chooses its connection IDs.
func TestAttachRefusesAConfiguredTransport(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, c := range []struct {
		name string
		tr   *quic.Transport
		want string
	}{
		{"no Conn", &quic.Transport{}, "no Conn"},
		{"a generator of its own", &quic.Transport{Conn: conn, ConnectionIDGenerator: fixedGenerator{}}, "already has a ConnectionIDGenerator"},
	} {
		before := c.tr.ConnectionIDGenerator
		err := quicsteer.Attach(c.tr, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "quicsteer: ") {
			t.Errorf("%s: Attach = %v, want an error saying %q", c.name, err, c.want)
		}
		if c.tr.ConnectionIDGenerator != before {
			t.Errorf("%s: Attach changed the ConnectionIDGenerator", c.name)
		}
	}
}

type fixedGenerator struct{}

func (fixedGenerator) GenerateConnectionID() (quic.ConnectionID, error) {
	return quic.ConnectionIDFromBytes(make([]byte, 8)), nil
}

func (fixedGenerator) ConnectionIDLen() int { return 8 }
