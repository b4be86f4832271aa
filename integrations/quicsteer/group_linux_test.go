package quicsteer_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/steer"
)

// The load of the multi-socket tests: connections that each send a
// request every requestGap, before and after the process adds a socket.
const (
	clientConns = 40
	roundsEach  = 10 // requests per connection and phase
	requestGap  = 50 * time.Millisecond
	firstShards = 4
	// requestTimeout bounds a request. A request whose packets reach a
	// transport that does not know its connection gets no answer; one
	// that is merely slow (-race, a busy machine) must not look like it.
	requestTimeout = 5 * time.Second
)

// TestSocketsOfOneProcess is the multi-core set-up: n sockets of one
// process on one port (reuseport.ListenPacketGroup), each with its own
// quic-go transport and steering member. Every connection's packets must
// reach the transport that owns it, before and after the process adds a
// socket under load: no transport drops a packet for a connection it does
// not know, no request fails, every connection is answered by one socket
// only, and every socket serves.
func TestSocketsOfOneProcess(t *testing.T) {
	r := runShards(t, true)
	if r.failed != 0 {
		t.Errorf("%d of %d requests failed: %v", r.failed, r.requests, r.firstErr)
	}
	if r.unknown != 0 {
		t.Errorf("%d packets reached a transport that does not own their connection", r.unknown)
	}
	if r.switched != 0 {
		t.Errorf("%d connections were answered by more than one socket", r.switched)
	}
	for i, n := range r.accepted {
		if n == 0 {
			t.Errorf("socket %d got no connection (%v)", i, r.accepted)
		}
	}
}

// TestSocketsOfOneProcessWithoutSteering is the control: the same sockets
// and load with plain transports, where the kernel's hash spreads the
// packets. Adding the socket moves flows to it, and its transport drops
// packets of connections it does not know. If it dropped none, the test
// above could not see misrouted packets.
func TestSocketsOfOneProcessWithoutSteering(t *testing.T) {
	r := runShards(t, false)
	if r.unknown == 0 {
		t.Errorf("no packet reached a transport that does not own its connection, and %d of %d requests failed; the test does not see misrouted packets", r.failed, r.requests)
	}
}

type shardsResult struct {
	requests, failed int
	firstErr         error
	unknown          int64   // packets dropped for an unknown connection ID, all transports
	switched         int     // connections answered by more than one socket
	accepted         []int64 // connections per socket
}

// runShards serves on firstShards sockets of one group, runs the clients,
// adds a socket half-way, and counts.
func runShards(t *testing.T, steered bool) shardsResult {
	if testing.Short() {
		t.Skip("a few seconds of load; not in -short")
	}
	serverTLS, clientTLS := tlsPair(t)
	lc := reuseport.ListenConfig{}
	pcs, err := lc.ListenPacketGroup(context.Background(), "udp", "127.0.0.1:0", firstShards)
	if err != nil {
		t.Fatal(err)
	}
	addr := pcs[0].LocalAddr()
	var g *steer.Group
	if steered {
		if g, err = steer.NewGroup(steer.Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
	}
	shards := make([]*shard, len(pcs))
	add := func(i int, pc net.PacketConn) {
		conn := pc.(*net.UDPConn)
		var m *steer.Member
		if g != nil {
			m = join(t, g, conn)
		}
		shards[i] = serveShard(t, i, conn, m, serverTLS)
	}
	for i, pc := range pcs {
		add(i, pc)
	}

	clients := make([]*client, clientConns)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dial(ctx, addr, clientTLS)
		cancel()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.close()
		clients[i] = c
	}

	var (
		mu  sync.Mutex
		r   shardsResult
		wg  sync.WaitGroup
		idx = make([]int, len(clients)) // the socket that answered each connection
	)
	for i := range idx {
		idx[i] = -1
	}
	phase := func(name string) {
		for i, c := range clients {
			wg.Go(func() {
				for range roundsEach {
					got, err := c.request(requestTimeout)
					mu.Lock()
					r.requests++
					switch {
					case err != nil:
						r.failed++
						if r.firstErr == nil {
							r.firstErr = fmt.Errorf("%s, connection %d: %w", name, i, err)
						}
					case idx[i] == -1:
						idx[i] = got
					case idx[i] != got:
						r.switched++
						idx[i] = got
					}
					mu.Unlock()
					if err != nil {
						return // the connection is lost; it would only time out again
					}
					time.Sleep(requestGap)
				}
			})
		}
		wg.Wait()
	}
	phase("before the socket was added")
	pc, err := reuseport.ListenPacket("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	shards = append(shards, nil)
	add(len(shards)-1, pc)
	phase("after the socket was added")
	// New connections, which must reach the new socket too.
	for i := range clientConns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dial(ctx, addr, clientTLS)
		cancel()
		if err == nil {
			_, err = c.request(requestTimeout)
			c.close()
		}
		r.requests++
		if err != nil {
			r.failed++
			if r.firstErr == nil {
				r.firstErr = fmt.Errorf("new connection %d: %w", i, err)
			}
		}
	}

	for _, s := range shards {
		r.unknown += s.unknown.Load()
		r.accepted = append(r.accepted, s.accepted.Load())
	}
	t.Logf("steered=%v: %d connections on %d then %d sockets, then %d new ones, per socket %v; %d requests, %d failed; %d packets dropped by a transport that does not know their connection",
		steered, clientConns, firstShards, len(shards), clientConns, r.accepted, r.requests, r.failed, r.unknown)
	return r
}
