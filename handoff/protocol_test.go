package handoff

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestMessagesRoundTrip(t *testing.T) {
	h := hello{minVersion: 1, maxVersion: 3, pid: 4242}
	if got, err := parseHello(h.append(nil)); err != nil || got != h {
		t.Errorf("hello: %+v, %v", got, err)
	}
	o := offer{version: 1, pid: 99, count: 3}
	if got, err := parseOffer(o.append(nil)); err != nil || got != o {
		t.Errorf("offer: %+v, %v", got, err)
	}
	for _, s := range []sockInfo{
		{"tcp4", netip.MustParseAddrPort("127.0.0.1:8080")},
		{"tcp", netip.MustParseAddrPort("[::]:1")},
		{"udp6", netip.MustParseAddrPort("[fe80::1%2]:53")},
	} {
		if got, err := parseSockInfo(s.append(nil)); err != nil || got != s {
			t.Errorf("socket %v: %+v, %v", s, got, err)
		}
	}
	r := refusal{code: refuseVersion, text: "no"}
	if got, err := parseRefusal(r.append(nil)); err != nil || got != r {
		t.Errorf("refusal: %+v, %v", got, err)
	}
	long := refusal{code: refuseVersion, text: strings.Repeat("x", 2*maxPayload)}
	if n := len(long.append(nil)); n > maxPayload {
		t.Errorf("refusal of %d bytes, over the %d limit", n, maxPayload)
	}
}

func TestMalformed(t *testing.T) {
	valid := sockInfo{"tcp4", netip.MustParseAddrPort("127.0.0.1:8080")}.append(nil)
	for name, parse := range map[string]func() error{
		"short hello":      func() error { _, err := parseHello(hello{}.append(nil)[:5]); return err },
		"wrong magic":      func() error { _, err := parseHello(bytes.Repeat([]byte{'x'}, len(hello{}.append(nil)))); return err },
		"inverted range":   func() error { _, err := parseHello(hello{minVersion: 3, maxVersion: 1}.append(nil)); return err },
		"long offer":       func() error { _, err := parseOffer(append(offer{}.append(nil), 0)); return err },
		"too many sockets": func() error { _, err := parseOffer(offer{count: maxSockets + 1}.append(nil)); return err },
		"unknown network": func() error {
			_, err := parseSockInfo(sockInfo{"sctp", netip.MustParseAddrPort("1.2.3.4:5")}.append(nil))
			return err
		},
		"port zero": func() error {
			_, err := parseSockInfo(sockInfo{"tcp", netip.MustParseAddrPort("1.2.3.4:0")}.append(nil))
			return err
		},
		"trailing byte":    func() error { _, err := parseSockInfo(append(valid, 0)); return err },
		"truncated socket": func() error { _, err := parseSockInfo(valid[:len(valid)-1]); return err },
		"empty refusal":    func() error { _, err := parseRefusal(nil); return err },
		"oversized frame":  func() error { _, _, err := readFrame(bytes.NewReader([]byte{1, 0xff, 0xff})); return err },
	} {
		if err := parse(); !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
	if _, _, err := readFrame(bytes.NewReader([]byte{1, 0, 5, 'a'})); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestPickVersion(t *testing.T) {
	for _, tc := range []struct {
		lo, hi, plo, phi, want uint16
		ok                     bool
	}{
		{1, 1, 1, 1, 1, true},
		{1, 3, 2, 5, 3, true},
		{2, 5, 1, 3, 3, true},
		{1, 1, 2, 3, 0, false},
		{2, 3, 1, 1, 0, false},
	} {
		v, ok := pickVersion(hello{minVersion: tc.lo, maxVersion: tc.hi}, tc.plo, tc.phi)
		if ok != tc.ok || (ok && v != tc.want) {
			t.Errorf("successor %d-%d, predecessor %d-%d: %d %v, want %d %v", tc.lo, tc.hi, tc.plo, tc.phi, v, ok, tc.want, tc.ok)
		}
	}
}
