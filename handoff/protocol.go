package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// The exchange, over one unix stream connection the successor makes to Path:
//
//	successor                                  predecessor
//	hello(magic, versions, pid)      ─────▶
//	                                 ◀─────    offer(version, pid, n)   or refuse(code, text)
//	                                 ◀─────    socket(network, address) + 1 fd, n times
//	  … binds its own socket, renames it over Path …
//	ready                            ─────▶
//
// Once the successor serves, the predecessor may hand it the connections
// it drains, when the server speaks a sequential protocol (see
// Service.Sequential), over a second connection to Path:
//
//	predecessor                                successor
//	pass(magic, pid)                 ─────▶
//	conn(listener's network, address) + 1 fd ─▶
//	                                 ◀─────    took(1 or 0)
//	  … once per connection, until the predecessor closes …
//
// Every message is a frame: a type byte, a big-endian uint16 payload length,
// then the payload. The descriptor of a socket message travels as
// SCM_RIGHTS ancillary data on the bytes of that frame.

// protocolMagic opens every hello, so that a predecessor can tell a
// successor from anything else that connects to Path.
const protocolMagic = "reuseport-handoff"

// passMagic opens the exchange that hands over connections.
const passMagic = "reuseport-handoff-conns"

// Protocol versions this package speaks. A successor offers a range; the
// predecessor picks the highest version both speak, or refuses.
const (
	minVersion uint16 = 1
	maxVersion uint16 = 1
)

const (
	frameHeaderLen = 3
	// maxPayload bounds every message: the largest, a socket record, needs
	// under 80 bytes, so anything near this limit is a broken peer.
	maxPayload = 512
	// maxSockets bounds how many sockets one offer may carry, and so how
	// many descriptors a successor may be made to receive.
	maxSockets = 1024
)

type msgType uint8

const (
	msgHello msgType = 1 + iota
	msgOffer
	msgSocket
	msgRefuse
	msgReady
	msgPass
	msgConn
	msgTook
)

func (t msgType) String() string {
	switch t {
	case msgHello:
		return "hello"
	case msgOffer:
		return "offer"
	case msgSocket:
		return "socket"
	case msgRefuse:
		return "refuse"
	case msgReady:
		return "ready"
	case msgPass:
		return "pass"
	case msgConn:
		return "conn"
	case msgTook:
		return "took"
	}
	return fmt.Sprintf("message type %d", uint8(t))
}

// errProtocol is wrapped by every error about bytes a peer sent.
var errProtocol = errors.New("protocol error")

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
}

// appendFrame appends one framed message to b.
func appendFrame(b []byte, t msgType, payload []byte) []byte {
	b = append(b, byte(t))
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...)
}

// readFrame reads one frame. It never allocates more than maxPayload bytes,
// whatever length the peer claims.
func readFrame(r io.Reader) (msgType, []byte, error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	t, n := msgType(h[0]), int(binary.BigEndian.Uint16(h[1:]))
	if n > maxPayload {
		return 0, nil, protocolErrorf("%v of %d bytes, the limit is %d", t, n, maxPayload)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return t, p, nil
}

// expect checks a frame's type.
func expect(got, want msgType) error {
	if got != want {
		return protocolErrorf("got %v, want %v", got, want)
	}
	return nil
}

// hello opens an exchange: the successor names the versions it speaks.
type hello struct {
	minVersion, maxVersion uint16
	pid                    uint32 // for log lines only
}

func (m hello) append(b []byte) []byte {
	b = append(b, protocolMagic...)
	b = binary.BigEndian.AppendUint16(b, m.minVersion)
	b = binary.BigEndian.AppendUint16(b, m.maxVersion)
	return binary.BigEndian.AppendUint32(b, m.pid)
}

func parseHello(p []byte) (hello, error) {
	const n = len(protocolMagic) + 2 + 2 + 4
	if len(p) != n || string(p[:len(protocolMagic)]) != protocolMagic {
		return hello{}, protocolErrorf("not a hello from a handoff successor")
	}
	p = p[len(protocolMagic):]
	m := hello{
		minVersion: binary.BigEndian.Uint16(p),
		maxVersion: binary.BigEndian.Uint16(p[2:]),
		pid:        binary.BigEndian.Uint32(p[4:]),
	}
	if m.minVersion > m.maxVersion {
		return hello{}, protocolErrorf("hello offers versions %d to %d", m.minVersion, m.maxVersion)
	}
	return m, nil
}

// pickVersion returns the highest version both sides speak.
func pickVersion(m hello, lo, hi uint16) (uint16, bool) {
	v := min(m.maxVersion, hi)
	return v, v >= max(m.minVersion, lo)
}

// offer announces how many socket messages follow.
type offer struct {
	version uint16
	pid     uint32 // for log lines only
	count   uint16
}

func (m offer) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, m.version)
	b = binary.BigEndian.AppendUint32(b, m.pid)
	return binary.BigEndian.AppendUint16(b, m.count)
}

func parseOffer(p []byte) (offer, error) {
	if len(p) != 8 {
		return offer{}, protocolErrorf("offer of %d bytes, want 8", len(p))
	}
	m := offer{
		version: binary.BigEndian.Uint16(p),
		pid:     binary.BigEndian.Uint32(p[2:]),
		count:   binary.BigEndian.Uint16(p[6:]),
	}
	if m.count > maxSockets {
		return offer{}, protocolErrorf("offer of %d sockets, the limit is %d", m.count, maxSockets)
	}
	return m, nil
}

// sockInfo is what identifies a listening socket: the network as the socket
// really is and its local address. Network is "tcp4" or "udp4" for IPv4,
// "tcp6" or "udp6" for IPv6-only, and "tcp" or "udp" for IPv6 sockets that
// also accept IPv4 (IPV6_V6ONLY off), which is what Go's "tcp" and "udp"
// make. A zone is kept as the decimal interface index the kernel reports.
type sockInfo struct {
	network string
	addr    netip.AddrPort
}

func (s sockInfo) String() string { return s.network + " " + s.addr.String() }

func (s sockInfo) append(b []byte) []byte {
	a := s.addr.String()
	b = append(b, byte(len(s.network)))
	b = append(b, s.network...)
	b = append(b, byte(len(a)))
	return append(b, a...)
}

func parseSockInfo(p []byte) (sockInfo, error) {
	network, p, ok := cutString(p)
	if !ok {
		return sockInfo{}, protocolErrorf("socket message: truncated network")
	}
	address, p, ok := cutString(p)
	if !ok || len(p) != 0 {
		return sockInfo{}, protocolErrorf("socket message: truncated address or trailing bytes")
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return sockInfo{}, protocolErrorf("socket message: unknown network %q", network)
	}
	addr, err := netip.ParseAddrPort(address)
	if err != nil || addr.Port() == 0 || addr.String() != address {
		return sockInfo{}, protocolErrorf("socket message: bad address %q", address)
	}
	return sockInfo{network: network, addr: addr}, nil
}

// cutString splits off a string prefixed by its one-byte length.
func cutString(p []byte) (string, []byte, bool) {
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		return "", p, false
	}
	n := int(p[0])
	return string(p[1 : 1+n]), p[1+n:], true
}

// refuseCode says why a predecessor will not hand its sockets over.
type refuseCode uint8

const (
	refuseVersion    refuseCode = 1 // no protocol version in common
	refusePermission refuseCode = 2 // the successor runs as another user
	refuseTooMany    refuseCode = 3 // more than maxSockets sockets
)

type refusal struct {
	code refuseCode
	text string
}

func (m refusal) append(b []byte) []byte {
	b = append(b, byte(m.code))
	return append(b, m.text[:min(len(m.text), maxPayload-1)]...)
}

func parseRefusal(p []byte) (refusal, error) {
	if len(p) < 1 {
		return refusal{}, protocolErrorf("empty refusal")
	}
	return refusal{code: refuseCode(p[0]), text: string(p[1:])}, nil
}

// refusedError is how a successor reports a predecessor's refusal.
type refusedError struct{ refusal }

func (e *refusedError) Error() string {
	return fmt.Sprintf("the predecessor refused (code %d): %q", e.code, e.text)
}

// passHello opens the exchange that hands over connections.
func passHello(pid int) []byte {
	return binary.BigEndian.AppendUint32([]byte(passMagic), uint32(pid))
}

func parsePassHello(p []byte) (pid uint32, err error) {
	if len(p) != len(passMagic)+4 || string(p[:len(passMagic)]) != passMagic {
		return 0, protocolErrorf("not a pass from a handoff predecessor")
	}
	return binary.BigEndian.Uint32(p[len(passMagic):]), nil
}
