package handoff

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
)

// seedStream is every message, framed, as they would cross the wire.
func seedStream() []byte {
	var b []byte
	b = appendFrame(b, msgHello, hello{minVersion: 1, maxVersion: 1, pid: 1}.append(nil))
	b = appendFrame(b, msgOffer, offer{version: 1, pid: 2, count: 1}.append(nil))
	b = appendFrame(b, msgSocket, sockInfo{"tcp", netip.MustParseAddrPort("[::]:8080")}.append(nil))
	b = appendFrame(b, msgRefuse, refusal{code: refuseVersion, text: "no"}.append(nil))
	return appendFrame(b, msgReady, nil)
}

// FuzzMessages decodes arbitrary bytes as a stream of frames and every
// frame as the message its type names. Malformed input must give an
// error, never a panic; what decodes must encode back to the same bytes.
func FuzzMessages(f *testing.F) {
	f.Add(seedStream())
	f.Add([]byte{byte(msgHello), 0xff, 0xff})
	f.Add([]byte{byte(msgSocket), 0, 3, 4, 't', 'c', 'p'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			typ, p, err := readFrame(r)
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, errProtocol) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var again []byte
			switch typ {
			case msgHello:
				m, err := parseHello(p)
				if err != nil {
					continue
				}
				again = m.append(nil)
			case msgOffer:
				m, err := parseOffer(p)
				if err != nil {
					continue
				}
				again = m.append(nil)
			case msgSocket:
				m, err := parseSockInfo(p)
				if err != nil {
					continue
				}
				again = m.append(nil)
			case msgRefuse:
				m, err := parseRefusal(p)
				if err != nil {
					continue
				}
				again = m.append(nil)
			default:
				continue
			}
			if !bytes.Equal(again, p) {
				t.Fatalf("%v %q decodes, but encodes back as %q", typ, p, again)
			}
		}
	})
}
