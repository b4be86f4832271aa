package quicsteer_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/b93f8b21/reuseport/integrations/internal/selfsigned"
	"github.com/b93f8b21/reuseport/integrations/quicsteer"
	"github.com/b93f8b21/reuseport/steer"
)

// alpn is the protocol of the test servers: each stream carries one
// request, answered with the index of the socket that served it.
const alpn = "quicsteer-test"

// shard is one socket of a server process, with its own transport.
type shard struct {
	index    int
	accepted atomic.Int64 // connections
	unknown  atomic.Int64 // packets dropped for a connection this transport does not know
}

// serveShard serves the test protocol on conn through a transport of its
// own, steered through m, or left to the kernel's hash when m is nil.
func serveShard(t testing.TB, index int, conn *net.UDPConn, m *steer.Member, tlsConf *tls.Config) *shard {
	t.Helper()
	s := &shard{index: index}
	tr := &quic.Transport{Conn: conn, Tracer: dropCounter{&s.unknown}}
	if m != nil {
		if err := quicsteer.Attach(tr, m); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := tr.Listen(tlsConf, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		tr.Close()
		conn.Close()
	})
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			s.accepted.Add(1)
			go answer(c, byte(index))
		}
	}()
	return s
}

// answer answers every stream of c with b.
func answer(c *quic.Conn, b byte) {
	for {
		str, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		go func() {
			io.Copy(io.Discard, str)
			str.Write([]byte{b})
			str.Close()
		}()
	}
}

// dropCounter counts, among a transport's events, the packets dropped
// because no connection of the transport has their connection ID: packets
// the kernel delivered to the wrong socket. A short-header packet is then
// dropped for its unknown connection ID, and a Handshake or 0-RTT one, as
// the transport passes it to its server, as unexpected.
type dropCounter struct{ n *atomic.Int64 }

func (d dropCounter) RecordEvent(e qlogwriter.Event) {
	p, ok := e.(qlog.PacketDropped)
	if !ok {
		return
	}
	switch {
	case p.Trigger == qlog.PacketDropUnknownConnectionID,
		p.Trigger == qlog.PacketDropUnexpectedPacket &&
			(p.Header.PacketType == qlog.PacketTypeHandshake || p.Header.PacketType == qlog.PacketType0RTT):
		d.n.Add(1)
	}
}

func (dropCounter) Close() error { return nil }

// client is one client connection, on a UDP socket of its own.
type client struct {
	tr *quic.Transport
	qc *quic.Conn
}

func dial(ctx context.Context, addr net.Addr, roots *tls.Config) (*client, error) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: udp}
	qc, err := tr.Dial(ctx, addr, roots, &quic.Config{})
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, err
	}
	return &client{tr: tr, qc: qc}, nil
}

// request sends one request and returns the index of the socket that
// answered.
func (c *client) request(timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	str, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	str.SetDeadline(time.Now().Add(timeout))
	if _, err := str.Write([]byte("which socket?")); err != nil {
		return 0, err
	}
	str.Close()
	b, err := io.ReadAll(str)
	if err != nil {
		return 0, err
	}
	if len(b) != 1 {
		return 0, fmt.Errorf("answer %q, want one byte", b)
	}
	return int(b[0]), nil
}

func (c *client) close() {
	c.qc.CloseWithError(0, "")
	c.tr.Close()
	c.tr.Conn.Close()
}

// tlsPair makes a server configuration and a client one that trusts it.
func tlsPair(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	server, roots, err := selfsigned.New(alpn)
	if err != nil {
		t.Fatal(err)
	}
	return server, &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{alpn}}
}

// join makes conn a member of g. Every Linux kernel CI has can steer, so
// an error is a failure, errors.ErrUnsupported included.
func join(t testing.TB, g *steer.Group, conn *net.UDPConn) *steer.Member {
	t.Helper()
	m, err := g.Join(conn)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
