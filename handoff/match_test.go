package handoff

import (
	"net/netip"
	"testing"
)

func TestRequestMatches(t *testing.T) {
	sock := func(network, addr string) sockInfo {
		return sockInfo{network, netip.MustParseAddrPort(addr)}
	}
	dual := sock("tcp", "[::]:8080")       // Listen("tcp", ":8080")
	v6only := sock("tcp6", "[::]:8080")    // Listen("tcp6", ":8080")
	v4any := sock("tcp4", "0.0.0.0:8080")  // Listen("tcp4", ":8080"), or "tcp" without IPv6
	v4lo := sock("tcp4", "127.0.0.1:8080") // Listen("tcp", "127.0.0.1:8080")
	v6lo := sock("tcp", "[::1]:8080")      // Listen("tcp", "[::1]:8080")
	v6loOnly := sock("tcp6", "[::1]:8080") // Listen("tcp6", "[::1]:8080")
	udp := sock("udp4", "127.0.0.1:8080")
	all := []sockInfo{dual, v6only, v4any, v4lo, v6lo, v6loOnly, udp}

	for _, tc := range []struct {
		network, address string
		want             []sockInfo
	}{
		{"tcp", ":8080", []sockInfo{dual, v4any}},
		{"tcp", "0.0.0.0:8080", []sockInfo{dual, v4any}},
		{"tcp", "[::]:8080", []sockInfo{dual, v4any}},
		{"tcp", ":0", []sockInfo{dual, v4any}},
		{"tcp", ":8081", nil},
		{"tcp4", ":8080", []sockInfo{v4any}},
		{"tcp6", ":8080", []sockInfo{v6only}},
		{"tcp", "127.0.0.1:8080", []sockInfo{v4lo}},
		{"tcp", "127.0.0.1:0", []sockInfo{v4lo}},
		{"tcp", "[::ffff:127.0.0.1]:8080", []sockInfo{v4lo}},
		{"tcp4", "127.0.0.1:8080", []sockInfo{v4lo}},
		{"tcp6", "127.0.0.1:8080", nil},
		{"tcp", "[::1]:8080", []sockInfo{v6lo}},
		{"tcp6", "[::1]:0", []sockInfo{v6loOnly}},
		{"udp", "127.0.0.1:8080", []sockInfo{udp}},
		{"udp", ":8080", nil},
		{"unix", "/tmp/x", nil},
		{"tcp", "no port", nil},
		{"tcp", "127.0.0.1:no-such-service-name", nil},
	} {
		req, ok := parseRequest(tc.network, tc.address)
		var got []sockInfo
		for _, s := range all {
			if ok && req.matches(s) {
				got = append(got, s)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s %q matches %v, want %v", tc.network, tc.address, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s %q matches %v, want %v", tc.network, tc.address, got, tc.want)
				break
			}
		}
	}
}
