package reuseport_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

const (
	spreadSockets = 4
	spreadConns   = 4000
)

// spreadCases listen on one kind of address and reach it over one family.
// The dual-stack cases check that IPv4 clients of an IPv6 wildcard socket
// are balanced too, which needs the kernel to find the group from an IPv4
// lookup.
var spreadCases = []struct {
	name       string
	family     string // of the group: "4", "6", or "" for dual-stack
	address    string
	dialFamily string // of the clients: "4" or "6"
}{
	{"IPv4", "4", "127.0.0.1:0", "4"},
	{"IPv6", "6", "[::1]:0", "6"},
	{"dual-stack/over IPv4", "", ":0", "4"},
	{"dual-stack/over IPv6", "", ":0", "6"},
	{"dual-stack [::]/over IPv4", "", "[::]:0", "4"},
}

// TestSpread checks that the kernel spreads new connections and datagram
// flows evenly over the sockets of a group, however the group was made.
//
// It runs in a private network namespace: each case leaves thousands of
// TIME_WAIT sockets and spent ephemeral ports behind, which must not be
// taken from other test packages sharing the host's loopback, and the
// dual-stack cases bind the wildcard address, which there is reachable
// from nowhere else.
func TestSpread(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	requireBalance(t)
	for _, proto := range []string{"tcp", "udp"} {
		for _, tc := range spreadCases {
			for _, mode := range groupModes {
				t.Run(proto+"/"+tc.name+"/"+mode, func(t *testing.T) {
					if tc.family == "6" || tc.dialFamily == "6" {
						requireIPv6(t)
					}
					network := proto + tc.family
					if proto == "tcp" {
						spreadTCP(t, mode, network, tc.address, proto+tc.dialFamily)
					} else {
						spreadUDP(t, mode, network, tc.address, proto+tc.dialFamily)
					}
				})
			}
		}
	}
}

func spreadTCP(t *testing.T, mode, network, address, dialNetwork string) {
	lns := listeners(t, mode, network, address, spreadSockets)
	tl := countAccepts(t, lns)
	dialMany(t, dialNetwork, loopback(t, dialNetwork, lns[0].Addr()), spreadConns)
	requireFair(t, tl.await(t, spreadConns))
}

func spreadUDP(t *testing.T, mode, network, address, dialNetwork string) {
	pcs := packetConns(t, mode, network, address, spreadSockets)
	tl := countDatagrams(t, pcs)
	got := sendMany(t, dialNetwork, loopback(t, dialNetwork, pcs[0].LocalAddr()), spreadConns, tl)
	// Loopback may drop a datagram when a receive queue is full; the spread
	// is judged on what arrived, provided enough did to judge it.
	if got < spreadConns/2 {
		t.Fatalf("only %d of %d datagrams arrived, too few to judge the spread", got, spreadConns)
	}
	if got < spreadConns {
		t.Logf("%d of %d datagrams were dropped", spreadConns-int(got), spreadConns)
	}
	requireFair(t, tl.snapshot())
}

// loopback is the loopback address of dialNetwork's family at a's port.
func loopback(t *testing.T, dialNetwork string, a net.Addr) string {
	t.Helper()
	host := "127.0.0.1"
	if dialNetwork[len(dialNetwork)-1] == '6' {
		host = "::1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port(t, a)))
}
