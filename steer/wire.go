package steer

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// The connection IDs a member issues are CIDLen bytes long (a constant of
// the group) and start with the member's id, big endian; the rest is random.
const (
	// DefaultCIDLen is the length of the connection IDs members issue when
	// [Config.CIDLen] is 0.
	DefaultCIDLen = 12
	// MinCIDLen and MaxCIDLen bound [Config.CIDLen]: the id takes 4 bytes
	// and QUIC version 1 allows at most 20.
	MinCIDLen = 8
	MaxCIDLen = 20
	// MaxMembers is the largest group whose table fits in one classic BPF
	// program (the kernel takes at most 4096 instructions).
	MaxMembers = 1000
)

// Where the program finds a member id in a QUIC packet (RFC 9000, 17.2 and
// 17.3): a short header has its DCID at byte 1, of a length not on the
// wire; a long header has the DCID length at byte 5 and the DCID at 6.
const (
	headerForm     = 0x80 // set in byte 0 of a long header
	shortDCID      = 1
	longDCIDLen    = 5
	longDCID       = 6
	minClientDCID  = 8 // a client's first DCID is at least this long (RFC 9000, 7.2)
	minLongPacket  = longDCID + minClientDCID
	idLen          = 4
	fallbackToHash = 0xffffffff // any index past the group: the kernel hashes
)

// A control packet (a probe or its reply) is controlLen bytes:
//
//	0..3   magic, whose first byte has the two top bits clear, so that
//	       QUIC stacks pass it on as a non-QUIC packet
//	4..7   the slot the probe asks for, big endian
//	8..15  the prober's nonce
//	16     kind: probe or reply
//	17..20 reply: the member's id, big endian;
//	       probe: 0, or the digest of a table (see Table.digest), which
//	       makes it a check: the program steers it to slot 0 if it was
//	       built from that table and to slot 1 if not
//	21     reply: the member's state
//	22     reply: the member's CIDLen
//	23     zero
//
// A probe carries zeros after its digest. Probe and reply are the same
// size, so an answer never amplifies a forged probe.
const (
	controlLen = 24
	offSlot    = 4
	offNonce   = 8
	offKind    = 16
	offID      = 17
	offDigest  = 17 // in a probe, where a reply has the id
	offState   = 21
	offCIDLen  = 22

	kindProbe = 1
	kindReply = 2
)

var magic = [4]byte{0x00, 'R', 'P', 'S'}

// IsControl reports whether b is a control packet of this package: a probe or
// a reply that a member's read loop must pass to [Member.HandleControl]
// rather than to its QUIC stack. It looks only at the first bytes, so it
// also reports malformed ones, which HandleControl then drops.
func IsControl(b []byte) bool {
	return len(b) >= len(magic) && [4]byte(b[:4]) == magic
}

// probeMsg is a probe or, with the member fields, a reply.
type probeMsg struct {
	kind   byte
	slot   uint32
	nonce  uint64
	id     uint32
	state  State
	cidLen int
	digest uint32 // probe: 0, or the table a check asks about
}

func (p probeMsg) marshal() []byte {
	b := make([]byte, controlLen)
	copy(b, magic[:])
	binary.BigEndian.PutUint32(b[offSlot:], p.slot)
	binary.BigEndian.PutUint64(b[offNonce:], p.nonce)
	b[offKind] = p.kind
	if p.kind == kindProbe {
		binary.BigEndian.PutUint32(b[offDigest:], p.digest)
	}
	if p.kind == kindReply {
		binary.BigEndian.PutUint32(b[offID:], p.id)
		b[offState] = byte(p.state)
		b[offCIDLen] = byte(p.cidLen)
	}
	return b
}

// parseControl decodes a well-formed probe or reply; anything else is an
// error.
func parseControl(b []byte) (probeMsg, error) {
	if len(b) != controlLen || !IsControl(b) {
		return probeMsg{}, fmt.Errorf("steer: not a control packet (%d bytes)", len(b))
	}
	p := probeMsg{
		kind:  b[offKind],
		slot:  binary.BigEndian.Uint32(b[offSlot:]),
		nonce: binary.BigEndian.Uint64(b[offNonce:]),
	}
	switch p.kind {
	case kindProbe:
		p.digest = binary.BigEndian.Uint32(b[offDigest:])
		for _, c := range b[offDigest+4:] {
			if c != 0 {
				return probeMsg{}, fmt.Errorf("steer: probe with a non-zero tail")
			}
		}
	case kindReply:
		p.id = binary.BigEndian.Uint32(b[offID:])
		p.state = State(b[offState])
		p.cidLen = int(b[offCIDLen])
		if !validID(p.id) || (p.state != Accepting && p.state != Draining) ||
			p.cidLen < MinCIDLen || p.cidLen > MaxCIDLen || b[controlLen-1] != 0 {
			return probeMsg{}, fmt.Errorf("steer: malformed reply")
		}
	default:
		return probeMsg{}, fmt.Errorf("steer: control packet of unknown kind %d", p.kind)
	}
	return p, nil
}

// validID reports whether id may name a member: 0 and all ones are kept
// out so that a zeroed or filled header never matches one.
func validID(id uint32) bool { return id != 0 && id != 0xffffffff }

// randomID returns a random valid member id not in taken.
func randomID(taken func(uint32) bool) uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		if id := binary.BigEndian.Uint32(b[:]); validID(id) && !taken(id) {
			return id
		}
	}
}

func randomNonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// newCID returns a connection ID of n bytes that starts with id.
func newCID(id uint32, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, id)
	rand.Read(b[idLen:])
	return b
}

// IDOf returns the member id a connection ID issued by a member of a group
// carries: its first 4 bytes. It reports false if cid is too short.
func IDOf(cid []byte) (uint32, bool) {
	if len(cid) < MinCIDLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(cid), true
}
